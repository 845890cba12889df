"""The architecture, checked: import-linter's contracts in pyproject.toml.

lint-imports runs once, and each contract is a test of its own that fails
with lint-imports' report, which names the modules and lines at fault: the
layers (entry points > runtime > adapters > app > config > core > errors >
domain), a core without I/O (this replaces test_core_is_pure's ast walk),
an application without SQLAlchemy, SMTP, IMAP or Jinja, SQLAlchemy and
Alembic in the database adapter only, no import cycle, and a sender process
without intake, parsing or scheduling. The last test breaks a copy of the
package, to show that the contracts notice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = (
    "layers",
    "pure-core",
    "app-no-io",
    "database-only",
    "acyclic",
    "lean-sender",
)


def lint_imports(
    *contracts: str, where: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the maild package found in where."""
    chosen = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *chosen],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # one line an import, unwrapped
    )


def contract_names() -> dict[str, str]:
    """Each contract's name (what lint-imports prints) by its id."""
    with (ROOT / "pyproject.toml").open("rb") as config:
        contracts = tomllib.load(config)["tool"]["importlinter"]["contracts"]
    return {contract["id"]: contract["name"] for contract in contracts}


@pytest.fixture(scope="module")
def report() -> str:
    done = lint_imports(*CONTRACTS)
    return done.stdout + done.stderr


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_contract_is_kept(report: str, contract: str) -> None:
    assert f"{contract_names()[contract]} KEPT" in report, report


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "maild", tmp_path / "maild", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    wrong = {
        "core/workflow.py": "import os",
        "app/ports.py": "from sqlalchemy import select",
        "adapters/templates.py": "from maild.runtime import daemon",
        "runtime/sender_wiring.py": "from maild.adapters.intake import smtp",
    }
    for module, line in wrong.items():
        with (tmp_path / "maild" / module).open("a", encoding="utf-8") as source:
            source.write(f"\n{line}\n")
    done = lint_imports(*CONTRACTS, where=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    for broken in (
        "maild.core.workflow -> os",
        "maild.app.ports -> sqlalchemy",
        "maild.adapters.templates -> maild.runtime.daemon",
        "maild.runtime.sender_wiring -> maild.adapters.intake.smtp",
    ):
        assert broken in done.stdout, done.stdout
    assert "Contracts: 0 kept, 6 broken." in done.stdout, done.stdout
