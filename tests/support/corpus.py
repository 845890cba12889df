"""Pytest plugin: the shared real-world mail corpus (read-only, outside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"

# Files in the corpus that are not mail: licences, notes, labels, test outputs.
_NOT_MAIL_PREFIXES = ("LICENSE", "MIT-LICENSE", "README")
_NOT_MAIL_NAMES = frozenset({"debian-copyright", ".gitattributes"})
_NOT_MAIL_SUFFIXES = frozenset({".tsv", ".md"})


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """Return the corpus folder; skip (fail on CI) when it is missing."""
    if not CORPUS_DIR.is_dir():
        message = f"corpus not found at {CORPUS_DIR}: clone it beside the repository"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CORPUS_DIR


def corpus_files(corpus_dir: Path) -> list[Path]:
    """List every mail file of the corpus, in a stable order."""
    return sorted(
        path for path in corpus_dir.rglob("*") if path.is_file() and _is_mail(path)
    )


def _is_mail(path: Path) -> bool:
    if path.name.startswith(_NOT_MAIL_PREFIXES) or path.name in _NOT_MAIL_NAMES:
        return False
    if path.suffix in _NOT_MAIL_SUFFIXES:
        return False
    return path.stat().st_size > 0  # mikel-mail's empty expected-output file
