"""maild/core does no I/O: it imports none of the I/O libraries (STYLE)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "maild" / "core"
FORBIDDEN = {
    "imapclient",
    "sqlalchemy",
    "aiosmtpd",
    "apscheduler",
    "smtplib",
    "socket",
    "os",
    "subprocess",
    "shutil",
    "pathlib",
    "requests",
    "maild.adapters",
    "maild.app.handle_mail",
    "maild.runtime.daemon",
    "maild.config",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    assert not {n for n in _imports(path) if _is_forbidden(n)}


def test_the_check_would_catch_an_io_import() -> None:
    assert _is_forbidden("sqlalchemy.orm")
    assert _is_forbidden("os")
    assert not _is_forbidden("osmosis")
