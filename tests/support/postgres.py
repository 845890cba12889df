"""Test support: a private PostgreSQL 15 server for the `postgres` tests. Does I/O.

`postgres_url` starts one server per session (initdb as the `postgres` user,
data and socket in a temp dir, Unix socket only, on a free port number) and
yields a SQLAlchemy URL of a fresh database; `fresh_postgres_db` gives each
test its own database and drops it afterwards. `postgres_server.restart()`
(or `stop_server()` ... `start_server()`) makes an outage. Needs root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dovecot import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    root: Path
    socket_dir: Path
    port: int

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of database on this server."""
        return (
            f"postgresql+psycopg://postgres@/{database}"
            f"?host={self.socket_dir}&port={self.port}"
        )

    def execute(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, prefix: str = "maild_test") -> str:
        """Create a uniquely named database and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop_server(self) -> None:
        """Stop the server (fast: open sessions are cut), as an outage would."""
        done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.root / "data"),
                            "-m", "fast", "-w", "stop")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def start_server(self) -> None:
        """Start the server again on the same port and socket directory."""
        done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.root / "data"),
                            "-o", _options(self), "-l", str(self.root / "postgres.log"),
                            "-w", "start")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def restart(self) -> None:
        """Stop and start the server: every connection is lost once."""
        self.stop_server()
        self.start_server()


def _require_postgres() -> None:
    problem = ""
    if not (BIN / "initdb").exists():
        problem = f"PostgreSQL 15 is missing at {BIN}: apt-get install postgresql-15"
    else:
        try:
            import psycopg  # noqa: F401 - availability check only
        except ImportError:
            problem = "psycopg is missing: pip install 'psycopg[binary]'"
    if not problem:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", SYSTEM_USER, "--", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _options(server: PostgresServer) -> str:
    return (
        f"-k {server.socket_dir} -p {server.port} -c listen_addresses='' "
        "-c fsync=off -c full_page_writes=off"
    )


def _start() -> PostgresServer:
    root = Path(tempfile.mkdtemp(prefix="maild-pg-"))
    owner = pwd.getpwnam(SYSTEM_USER)
    for path in (root, root / "data", root / "run"):
        path.mkdir(exist_ok=True)
        os.chown(path, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(root, root / "run", free_port())
    log = root / "postgres.log"
    options = _options(server)
    steps = [
        [str(BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres",
         "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        [str(BIN / "pg_ctl"), "-D", str(root / "data"), "-o", options,
         "-l", str(log), "-w", "start"],
    ]  # fmt: skip
    for step in steps:
        done = _as_postgres(*step)
        if done.returncode != 0:
            text = log.read_text() if log.exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            pytest.fail(f"{step[0]} failed:\n{done.stdout}{done.stderr}\n{text}")
    return server


def _stop(server: PostgresServer) -> None:
    _as_postgres(str(BIN / "pg_ctl"), "-D", str(server.root / "data"),
                 "-m", "fast", "-w", "stop")  # fmt: skip
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15, stopped at the end of the session."""
    _require_postgres()
    server = _start()
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of a database created for this session."""
    return postgres_server.url(postgres_server.create_database())


@pytest.fixture
def fresh_postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new database for this test, dropped afterwards."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
