"""Floor phase: the bare Python loop maild is compared with. I/O.

One process fetches the inbox in batches with imapclient (BODY.PEEK[], the
mail stays), parses each mail with the standard `email` package
(`email.policy.default`: headers, the text or HTML body, attachments
decoded) and inserts rows in SQLite (WAL, one transaction per batch). No
ticket logic, no worker processes, no notifications: the ceiling for a
Python implementation on this machine.
"""

from __future__ import annotations

import email
import sqlite3
import time
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from tests.support.dovecot import HELPDESK, DovecotServer

BATCH = 50

_SCHEMA = """
CREATE TABLE mails (id INTEGER PRIMARY KEY, uid INTEGER UNIQUE, message_id TEXT,
    sender TEXT, subject TEXT, body TEXT, size INTEGER, raw BLOB);
CREATE TABLE attachments (id INTEGER PRIMARY KEY, mail_id INTEGER REFERENCES mails,
    filename TEXT, content_type TEXT, size INTEGER, data BLOB);
CREATE INDEX ix_attachments_mail ON attachments (mail_id);
"""


def _parse(raw: bytes) -> tuple[EmailMessage, str, list[tuple[str, str, bytes]]]:
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    files = []
    for item in msg.iter_attachments():
        data = item.get_payload(decode=True) or b""
        files.append((item.get_filename() or "", item.get_content_type(), data))
    return msg, body, files


def _insert(db: sqlite3.Connection, uid: int, raw: bytes) -> None:
    msg, body, files = _parse(raw)
    cursor = db.execute(
        "INSERT INTO mails (uid, message_id, sender, subject, body, size, raw)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            uid,
            str(msg["Message-ID"] or ""),
            str(msg["From"] or ""),
            str(msg["Subject"] or ""),
            body,
            len(raw),
            raw,
        ),
    )
    db.executemany(
        "INSERT INTO attachments (mail_id, filename, content_type, size, data)"
        " VALUES (?, ?, ?, ?, ?)",
        [(cursor.lastrowid, name, kind, len(data), data) for name, kind, data in files],
    )


def run_floor(server: DovecotServer, database: Path, expected: int) -> dict[str, Any]:
    """Fetch, parse and store every inbox mail; return mails/s."""
    database.unlink(missing_ok=True)
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    started = time.perf_counter()
    count = 0
    with server.connect(HELPDESK) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for i in range(0, len(uids), BATCH):
            fetched = client.fetch(uids[i : i + BATCH], ["BODY.PEEK[]"])
            db.execute("BEGIN")
            for uid in uids[i : i + BATCH]:
                _insert(db, uid, fetched[uid][b"BODY[]"])
                count += 1
            db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    if count != expected:
        raise RuntimeError(f"floor read {count} mails, expected {expected}")
    return {
        "mails": count,
        "seconds": round(seconds, 2),
        "mails_per_s": round(count / seconds, 1),
    }
