"""A real Store on SQLite or PostgreSQL for the adapter tests, and numbered
tickets to fill it with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import make_engine, upgrade
from maild.adapters.database.store import Store
from maild.domain import Ticket
from tests.support.factories import make_ticket

# Parameters of a fixture that runs its tests on both databases.
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def store_on(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Store]:
    """A migrated store on database ("sqlite", or "postgresql": a fresh one)."""
    url = (
        f"sqlite:///{tmp_path / 'maild.db'}"
        if database == "sqlite"
        else str(request.getfixturevalue("fresh_postgres_db"))
    )
    upgrade(url)
    store = Store(make_engine(url), BlobStore(tmp_path / "blobs"))
    try:
        yield store
    finally:
        store.close()


def numbered_ticket(n: int, **changes: Any) -> Ticket:
    """The nth ticket of a test, with its own number and token, not saved yet."""
    fields: dict[str, Any] = {
        "id": 0,
        "number": f"I261130_{n:04d}",
        "token": f"token{n:019d}",
        "description": "Plus rien ne sort.",
        "application": "",
        "phone": "",
    }
    return make_ticket(**(fields | changes))
