"""Database connection and migrations. I/O.

SQLite runs in WAL mode with a busy timeout and takes its write lock at the
start of every transaction (BEGIN IMMEDIATE), so that a read-then-write such
as the next ticket number or a CLAIM is isolated (see shared notes). The
schema is owned by Alembic; `upgrade` brings any database to head.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# The newest migration; a test checks it is Alembic's head. Knowing it lets a
# command see an up-to-date database without loading Alembic (0.3 s a command).
HEAD_REVISION = "0007"
SQLITE_BUSY_SECONDS = 30
WRITE_OPTION = "maild_write"  # execution option: this transaction writes
# Execution option: a write whose loss in a power cut costs nothing but a
# repetition (an attempt counted, a mail marked sent). Its commit is not
# flushed to disk by itself on SQLite; the next durable commit flushes it
# with its own, since the write-ahead log is one file written in order.
RELAXED_OPTION = "maild_relaxed"


def make_engine(
    url: str, *, checkpoints: bool = True, idle_in_transaction: float | None = None
) -> Engine:
    """Create the engine for url, with SQLite set up for several writers.

    checkpoints=False: a commit never copies SQLite's write-ahead log into the
    database file itself, as it does once the log holds 1,000 pages; a
    Checkpointer does it on a thread of its own (the daemon's).

    idle_in_transaction (PostgreSQL, seconds): the server ends a session that
    waits that long inside a transaction, rolling it back. A daemon paused
    (SIGSTOP, a frozen VM) between its lease check and its COMMIT would
    otherwise hold its lease row's share lock, and the role, until it resumes.
    """
    if make_url(url).get_backend_name() != "sqlite":
        return _postgresql_engine(url, idle_in_transaction)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # What is deleted or rewritten is overwritten with zeros in the file,
        # not left in free space: an erasure must leave no trace (README).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        if not checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front; readers see a WAL snapshot and never wait.
        options = connection.get_execution_options()
        if not options.get(WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN")
            return
        relaxed = options.get(RELAXED_OPTION, False)
        connection.exec_driver_sql(
            f"PRAGMA synchronous={'NORMAL' if relaxed else 'FULL'}"
        )
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgresql_engine(url: str, idle_in_transaction: float | None) -> Engine:
    """PostgreSQL's engine; a session the server ended reads as unavailable."""
    options = {}
    if idle_in_transaction is not None:
        limit = max(1, round(idle_in_transaction * 1000))
        options["options"] = f"-c idle_in_transaction_session_timeout={limit}"
    engine = create_engine(url, pool_pre_ping=True, future=True, connect_args=options)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> DBAPIError | None:
        # SQLSTATE 25P03 is of the "invalid transaction state" class, which
        # DB-API calls an InternalError; it means a session ended and its
        # transaction rolled back: what a restarting database means too.
        if getattr(context.original_exception, "sqlstate", None) != "25P03":
            return None
        return OperationalError(
            context.statement,
            context.parameters,
            context.original_exception,
            connection_invalidated=True,
        )

    return engine


def alembic_config(url: str) -> Config:
    """An Alembic configuration for url that needs no alembic.ini."""
    from alembic.config import Config  # only when migrating: slow to import

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Migrate the database at url to the newest schema."""
    from alembic import command

    log.info("migrating database schema to head")
    command.upgrade(alembic_config(url), "head")


def is_up_to_date(engine: Engine) -> bool:
    """Tell whether the database's schema is at HEAD_REVISION, without Alembic."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False  # a new database
        versions = connection.execute(text("SELECT version_num FROM alembic_version"))
        return list(versions.scalars()) == [HEAD_REVISION]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database; None for PostgreSQL or an in-memory one."""
    database = make_url(url).database if is_sqlite(url) else None
    return Path(database) if database and database != ":memory:" else None


class Checkpointer:
    """Copies SQLite's write-ahead log into the database file, on a thread.

    With a large database, that copy writes pages all over the file and waits
    for the disk; done by a commit, as SQLite does by default, it stalled the
    mail whose commit it was. The daemon's connections leave it to this
    thread (make_engine(checkpoints=False)), which runs a PASSIVE checkpoint
    every `seconds` on a connection of its own, opened once: writers and
    readers go on meanwhile. The last connection to close checkpoints what is
    left.
    """

    def __init__(self, url: str, seconds: float = 0.5) -> None:
        self._path = make_url(url).database or ""
        self._seconds = seconds
        self._db: sqlite3.Connection | None = None  # used by one thread at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="maild-checkpoints", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.checkpoint()
        if self._db is not None:
            self._db.close()
            self._db = None

    def checkpoint(self) -> None:
        """Copy what the log holds into the database file, as far as readers allow."""
        try:
            if self._db is None:
                self._db = sqlite3.connect(
                    self._path, timeout=SQLITE_BUSY_SECONDS, check_same_thread=False
                )
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next round tries again
            log.warning("sqlite checkpoint failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            self.checkpoint()
