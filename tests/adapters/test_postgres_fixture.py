"""The private PostgreSQL fixture gives working, separate databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.postgres


def test_session_database_answers(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            version = conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("15.")


@pytest.mark.parametrize("round_", [1, 2])
def test_fresh_database_starts_empty(fresh_postgres_db: str, round_: int) -> None:
    engine = create_engine(fresh_postgres_db)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE tablename = 'probe'")
            ).scalar_one()
            conn.execute(text("CREATE TABLE probe (round integer)"))
            conn.execute(text("INSERT INTO probe VALUES (:r)"), {"r": round_})
    finally:
        engine.dispose()
    assert tables == 0  # the other round's table is not visible here
