"""Wiring of `maild person export|anonymise`: the desk's secret, the files. I/O.

The pseudonym's secret is `pseudonym.key` in the storage folder, 32 random
bytes made at the first erasure: the same address then always gives the
same pseudonym on this desk. Losing it only means a later erasure of the
same person gives another pseudonym.
"""

from __future__ import annotations

import getpass
import os
import secrets
from datetime import datetime
from pathlib import Path

from maild.adapters.database.person_export import Json, export_person
from maild.adapters.database.store import open_store
from maild.app.anonymise import Anonymise, Erased
from maild.config import Settings
from maild.runtime.retention import kept_copies

SECRET_FILE = "pseudonym.key"  # noqa: S105 (a file name, not a secret)


def desk_secret(storage_dir: Path) -> bytes:
    """The desk's pseudonym secret, made once (mode 0600)."""
    path = storage_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        storage_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made meanwhile by another run
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
        return path.read_bytes()


def export(settings: Settings, address: str, out: Path, now: datetime) -> Json:
    store = open_store(settings, migrate=True)
    try:
        return export_person(store, address, out, now)
    finally:
        store.close()


def anonymise(settings: Settings, address: str, by: str, now: datetime) -> Erased:
    """Erase address; the mails kept as .eml files (no relay) go with it."""
    store = open_store(settings, migrate=True)
    try:
        erased = Anonymise(store, desk_secret(settings.storage_dir)).run(
            address.strip().lower(), by or getpass.getuser(), now
        )
        store.truncate_log()
    finally:
        store.close()
    kept_copies(settings).forget(erased.sent)
    return erased
