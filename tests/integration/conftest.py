"""Fixtures only the daemon-level tests use: kept out of the root conftest so
that the unit layer does not import SQLAlchemy and the daemon's test harness."""

from tests.support.crash import sqlite_db, started  # noqa: F401 - fixtures
