"""`maild backup DIR` and `maild restore DIR`: the database and the kept mail
together. I/O (database, files, pg_dump).

Consistency while the daemon runs comes from the order of the copies and
from how blobs are written. The database is copied first, as one snapshot:
SQLite's online backup API (a read transaction; the daemon's writers go on,
WAL), or `pg_dump` (one repeatable-read transaction). The blob folder is
copied after it: a blob is named by its SHA-256, written once and never
changed, and every commit that names one waits until its file is on disk
(Store.transaction), so every blob the snapshot names is already there when
the folder is copied. Blobs of mail that arrived after the snapshot are
copied too and are harmless. A blob the snapshot names that is missing from
the copy (removed by a purge in between) makes the backup fail, naming it.

DIR then holds `maild.db` (SQLite) or `maild.pgdump` (pg_dump's custom
format), `blobs/` laid out as under [storage] dir, `outbox/` (the `.eml`
files of outgoing mail kept when no relay is configured: where a desk on the
embedded default has its notifications), and `maild-backup.json` (the schema
revision, the database kind, the counts). `restore` refuses a
target that holds a database or blobs already (unless forced), a backup made
by a newer maild or of another kind of database, and a backup whose blobs do
not all match their names; it restores an older schema and migrates it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from maild.adapters.database.engine import HEAD_REVISION, is_sqlite, upgrade
from maild.config import Settings
from maild.errors import MaildError

MANIFEST = "maild-backup.json"
SQLITE_FILE = "maild.db"
PG_FILE = "maild.pgdump"
BLOBS = "blobs"
OUTBOX = "outbox"  # the .eml folder of outgoing mail (relay.EmlDirectory)
FORMAT = 1
_NAMED = (
    "SELECT blob_sha256 FROM mails WHERE blob_sha256 != '' "
    "UNION SELECT sha256 FROM attachments"
)


class BackupError(MaildError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Summary:
    database: str  # sqlite | postgresql
    schema: str
    blobs: int
    outgoing: int = 0  # .eml files of outgoing mail


def backup(settings: Settings, target: Path) -> Summary:
    """Copy the database, then the blobs, into target (new or empty)."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    url = settings.database_url
    if is_sqlite(url):
        _sqlite_copy(_sqlite_path(url), target / SQLITE_FILE)
        schema, named = _sqlite_contents(target / SQLITE_FILE)
    else:
        _pg_dump(url, target / PG_FILE)
        schema, named = _pg_contents(url)
    copied = _copy_blobs(settings.storage_dir / BLOBS, target / BLOBS)
    outgoing = _copy_outgoing(settings.eml_dir, target / OUTBOX)
    missing = sorted(named - copied)
    if missing and is_sqlite(url):  # PostgreSQL: names read after the dump
        raise BackupError(
            f"{len(missing)} blob(s) the database names are gone from "
            f"{settings.storage_dir / BLOBS} (first: {missing[0]}); back up again"
        )
    summary = Summary(
        "sqlite" if is_sqlite(url) else "postgresql", schema, len(copied), outgoing
    )
    manifest = {
        "format": FORMAT,
        "database": summary.database,
        "schema": schema,
        "blobs": summary.blobs,
        "outgoing": outgoing,
        "created_at": datetime.now(UTC).isoformat(),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return summary


def restore(settings: Settings, source: Path, *, force: bool = False) -> Summary:
    """Put a backup back: checks first, then the database, then the blobs."""
    manifest = _manifest(source)
    url = settings.database_url
    kind = "sqlite" if is_sqlite(url) else "postgresql"
    if manifest.get("database") != kind:
        raise BackupError(
            f"{source} holds a {manifest.get('database')} backup; "
            f"database.url is {kind}"
        )
    schema = str(manifest.get("schema"))
    if schema > HEAD_REVISION:
        raise BackupError(
            f"{source} has schema {schema}, newer than this maild's "
            f"({HEAD_REVISION}): restore it with that maild"
        )
    blobs = settings.storage_dir / BLOBS
    if not force:
        _refuse_overwrite(url, blobs)
    named = _sqlite_contents(source / SQLITE_FILE)[1] if kind == "sqlite" else set()
    _check_blobs(source / BLOBS, named)
    if kind == "sqlite":
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, _suffixed(path, "-wal"), _suffixed(path, "-shm")):
            stale.unlink(missing_ok=True)
        _sqlite_copy(source / SQLITE_FILE, path)
    else:
        _pg_restore(url, source / PG_FILE)
    count = len(_copy_blobs(source / BLOBS, blobs))
    outgoing = _copy_outgoing(source / OUTBOX, settings.eml_dir)
    if schema < HEAD_REVISION:
        upgrade(url)
    return Summary(
        kind, HEAD_REVISION if schema < HEAD_REVISION else schema, count, outgoing
    )


def _manifest(source: Path) -> dict[str, object]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} holds no {MANIFEST}: not a maild backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {source / MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source / MANIFEST}: unknown backup format")
    return manifest


def _refuse_overwrite(url: str, blobs: Path) -> None:
    if is_sqlite(url):
        path = _sqlite_path(url)
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(
                f"{path} exists: restore into a new place, or --force to replace it"
            )
    elif _pg_has_tables(url):
        raise BackupError("the database holds tables: --force replaces them")
    if blobs.is_dir() and any(blobs.iterdir()):
        raise BackupError(f"{blobs} is not empty: --force to restore over it")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("database.url names no SQLite file")
    return Path(database)


def _suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: one consistent snapshot, writers not stopped."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    try:
        src = sqlite3.connect(source, timeout=30)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"copying {source}: {exc}") from exc


def _sqlite_contents(path: Path) -> tuple[str, set[str]]:
    """The schema revision and the blobs a SQLite copy names."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            schema = db.execute("SELECT version_num FROM alembic_version").fetchone()
            named = {row[0] for row in db.execute(_NAMED)}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: {exc}") from exc
    return (schema[0] if schema else ""), named


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore read it."""
    return (
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def _pg_dump(url: str, target: Path) -> None:
    _run_pg(["pg_dump", "--format=custom", f"--file={target}", libpq_url(url)])


def _pg_restore(url: str, source: Path) -> None:
    command = ["pg_restore", "--clean", "--if-exists", "--no-owner"]
    _run_pg([*command, f"--dbname={libpq_url(url)}", str(source)])


def _run_pg(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(
            f"{command[0]} not found: install PostgreSQL's client programs "
            "(Debian: postgresql-client)"
        )
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our arguments
    if done.returncode != 0:
        raise BackupError(f"{command[0]}: {done.stderr.strip().splitlines()[-1:]}")


def _pg_contents(url: str) -> tuple[str, set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar_one()
            named = set(connection.execute(text(_NAMED)).scalars())
    finally:
        engine.dispose()
    return str(schema), named


def _pg_has_tables(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_name = 'alembic_version'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(found)


def _blob_files(folder: Path) -> Iterator[Path]:
    """The blobs under folder (aa/bb/sha256), not the writes under way."""
    if folder.is_dir():
        yield from (p for p in folder.glob("??/??/*") if not p.name.startswith("."))


def _copy_blobs(source: Path, target: Path) -> set[str]:
    """Copy every blob not there yet; return the names now in target."""
    names: set[str] = set()
    for blob in _blob_files(source):
        copy = target / blob.relative_to(source)
        if not copy.exists() or copy.stat().st_size != blob.stat().st_size:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(blob, copy)
        names.add(blob.name)
    return names


def _copy_outgoing(source: Path, target: Path) -> int:
    """Copy the .eml files of outgoing mail not there yet; return how many
    source holds. Only whole files: the sender writes each under a temporary
    name, then renames it."""
    if not source.is_dir():
        return 0  # a relay is configured, or nothing was sent yet
    files = sorted(source.glob("*.eml"))
    for kept in files:
        copy = target / kept.name
        if not copy.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kept, copy)
    return len(files)


def _check_blobs(folder: Path, named: set[str]) -> None:
    """Every blob named is in folder, and every blob there matches its name."""
    present = {}
    for blob in _blob_files(folder):
        if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
            raise BackupError(f"{blob} does not match its name: the backup is damaged")
        present[blob.name] = blob
    missing = sorted(named - present.keys())
    if missing:
        raise BackupError(
            f"{len(missing)} blob(s) the database names are not in {folder} "
            f"(first: {missing[0]}): the backup is incomplete"
        )
