"""Scale phase: a database that already holds a million tickets. I/O.

`fill` migrates a fresh database and inserts, in chunks inside one
transaction, what years of use leave behind: per ticket its source mail, the
`created` event and two `notified` events, the confirmation and announcement
in the outbox (sent; bodies cut to a placeholder of 256 bytes), the answer
counted against the sender's cap, and for closed tickets (98.5 %) a `closed`
event; 10 % carry an attachment row, 5 % a watcher. About 1,000 tickets a
day, on days before today, so no number collides with the ones the daemon
gives. Open tickets (1.5 %: new, in progress, resolved) have their SLA timers
a month ahead, so that no timer fires during the bench. PostgreSQL is then
vacuumed and analysed, as autovacuum would have done over the years.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, create_engine, text

from maild.adapters.database.engine import upgrade
from maild.adapters.database.models import (
    AttachmentRow,
    AutoAnswerRow,
    CounterRow,
    EventRow,
    MailRow,
    OutboxRow,
    TicketRow,
    WatcherRow,
)

Stamp = Callable[[datetime], object]
CHUNK = 10_000
PER_DAY = 1_000
ZONE = ZoneInfo("Europe/Paris")
_STATES = (("closed", 0.985), ("resolved", 0.005), ("in_progress", 0.005),
           ("new", 0.005))  # fmt: skip
_PLACEHOLDER = b"x" * 256
_TABLES = (MailRow, TicketRow, EventRow, OutboxRow, AutoAnswerRow, AttachmentRow,
           WatcherRow, CounterRow)  # fmt: skip


def _status(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for state, share in _STATES:
        total += share
        if roll < total:
            return state
    return "closed"


class _Rows:
    """Builds the rows of one chunk of tickets, all tables at once."""

    def __init__(self, seed: int, now: datetime, stamp: Stamp) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.stamp = stamp
        self.ahead = stamp(now + timedelta(days=30))
        self.sequences: dict[str, int] = {}
        self.event_id = 0
        self.tables: dict[type, list[dict[str, Any]]] = {}

    def chunk(self, first: int, last: int) -> dict[type, list[dict[str, Any]]]:
        self.tables = {table: [] for table in _TABLES if table is not CounterRow}
        for ticket_id in range(first, last):
            self._ticket(ticket_id)
        return self.tables

    def _ticket(self, ticket_id: int) -> None:
        rng, now = self.rng, self.now
        created = now - timedelta(
            days=1 + (ticket_id - 1) // PER_DAY, seconds=rng.randrange(36_000)
        )
        letter = "S" if rng.random() < 0.15 else "I"
        counter = f"{letter}{created.astimezone(ZONE):%y%m%d}"
        self.sequences[counter] = self.sequences.get(counter, 0) + 1
        number = f"{counter}_{self.sequences[counter]:04d}"
        requester = f"emp{rng.randrange(20_000):05d}@example.com"
        status = _status(rng)
        is_open = status != "closed"
        owner = (
            None if status == "new" else rng.choice(("alice", "bob")) + "@example.com"
        )
        at, ahead_at = self.stamp(created), self.ahead
        later = {n: self.stamp(created + timedelta(hours=n)) for n in (1, 4, 24, 48)}
        self.tables[MailRow].append({
            "id": ticket_id, "source": "imap:archive@example.com/INBOX",
            "uidvalidity": 1, "uid": ticket_id,
            "content_hash": f"{rng.getrandbits(256):064x}",
            "message_id": f"<archive.{ticket_id}@client.example.com>",
            "sender": requester, "size": 4_000 + rng.randrange(40_000),
            "attempts": 1, "state": "done", "reason": f"ticket {number}",
            "ticket_id": ticket_id, "received_at": at, "handled_at": at,
            "blob_sha256": "0" * 64,
        })  # fmt: skip
        self.tables[TicketRow].append({
            "id": ticket_id, "number": number,
            "token": f"{rng.getrandbits(96):024x}",
            "ticket_type": "request" if letter == "S" else "incident",
            "status": status, "subject": "Archived ticket",
            "description": "Historical ticket for the scale benchmark.",
            "requester_name": "", "requester_address": requester,
            "beneficiary_name": "", "beneficiary_address": requester,
            "application": rng.choice(("SAP", "VPN", "Messagerie", "Imprimante")),
            "urgency": rng.choice(("low", "medium", "high")), "phone": "",
            "owner": owner, "created_at": at, "callback_due_at": later[4],
            "first_call_at": None if status == "new" else later[1],
            "callback_met": None if status == "new" else True,
            "resolved_at": later[24] if status in ("resolved", "closed") else None,
            "closed_at": later[48] if not is_open else None,
            "close_reason": "accepted" if not is_open else None,
            "rating_score": rng.choice((None, 3, 4, 5)) if not is_open else None,
            "rating_comment": None, "source_mail_id": ticket_id,
            "reminder_at": None,
            "breach_at": None,
            "reannounce_at": ahead_at if status == "new" else None,
            "pdr_retry_at": None,
            "auto_close_at": ahead_at if status == "resolved" else None,
        })  # fmt: skip
        self._related(ticket_id, number, requester, at, is_open)

    def _related(
        self, ticket_id: int, number: str, requester: str, created: object,
        is_open: bool,
    ) -> None:  # fmt: skip
        rng = self.rng
        kinds = [("created", requester, None), ("notified", "maild", 1),
                 ("notified", "maild", 2)]  # fmt: skip
        if not is_open:
            kinds.append(("accepted", requester, None))
        for kind, actor, outbox in kinds:
            self.tables[EventRow].append({
                "ticket_id": ticket_id, "kind": kind, "actor": actor, "at": created,
                "text": number, "is_internal": kind == "notified",
                "message_id": f"t{ticket_id}.{outbox}@example.com" if outbox else None,
                "mail_id": ticket_id if kind == "created" else None,
            })  # fmt: skip
        for n, (to, audience) in enumerate(
            ((requester, "requester"), ("techniciens@example.com", "pool")), 1
        ):
            self.tables[OutboxRow].append({
                "message_id": f"t{ticket_id}.{n}@example.com", "ticket_id": ticket_id,
                "recipients": to, "subject": f"[HD {number}]", "audience": audience,
                "data": _PLACEHOLDER, "state": "sent", "attempts": 1,
                "next_attempt_at": created, "last_error": "", "created_at": created,
                "sent_at": created,
            })  # fmt: skip
        self.tables[AutoAnswerRow].append({
            "address": requester, "at": created, "is_held": False,
            "template": "confirmation", "ticket_id": ticket_id,
        })  # fmt: skip
        if rng.random() < 0.10:
            self.tables[AttachmentRow].append({
                "ticket_id": ticket_id, "event_id": None, "filename": "capture.png",
                "content_type": "image/png", "size": 120_000, "sha256": "0" * 64,
                "is_inline": False, "content_id": "",
            })  # fmt: skip
        if rng.random() < 0.05:
            self.tables[WatcherRow].append({
                "ticket_id": ticket_id, "name": "",
                "address": f"emp{rng.randrange(20_000):05d}@example.com",
            })  # fmt: skip


def _chunks(
    count: int, seed: int, now: datetime, stamp: Stamp
) -> Iterator[dict[type, list[dict[str, Any]]]]:
    rows = _Rows(seed, now, stamp)
    for first in range(1, count + 1, CHUNK):
        yield rows.chunk(first, min(first + CHUNK, count + 1))
    yield {CounterRow: [{"name": k, "value": v} for k, v in rows.sequences.items()]}


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL: move each serial past the ids given explicitly."""
    for model in _TABLES:
        table = model.__table__.name  # type: ignore[attr-defined]
        if "id" in model.__table__.c:  # type: ignore[attr-defined]
            conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 1) FROM {table}))"
            ))  # fmt: skip


def _sqlite_stamp(moment: datetime) -> object:
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert(conn: Connection, model: type, values: list[dict[str, Any]]) -> None:
    """Insert rows straight through the driver (executemany, or COPY on PostgreSQL)."""
    table = model.__table__.name  # type: ignore[attr-defined]
    columns = list(values[0])
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(tuple(row.values()))
        return
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        [tuple(row.values()) for row in values],
    )


def _drop_indexes(conn: Connection) -> list[str]:
    """SQLite: drop the secondary indexes for the load; return their DDL."""
    conn.exec_driver_sql("PRAGMA cache_size=-1000000")  # bench set-up only: the
    conn.exec_driver_sql("PRAGMA synchronous=OFF")  # daemon has its own settings
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).all()
    for name, _sql in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in found]


def _drop_pg_indexes(conn: Connection) -> list[str]:
    """PostgreSQL: the same, for the indexes no constraint owns."""
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    found = conn.exec_driver_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
    ).all()
    for name, _sql in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in found]


def fill(database_url: str, tickets: int, *, seed: int) -> dict[str, Any]:
    """Migrate database_url and insert tickets with their history; time it."""
    upgrade(database_url)
    engine = create_engine(database_url)
    is_sqlite = engine.dialect.name == "sqlite"
    started = time.perf_counter()
    rows = 0
    now = datetime.now(UTC)
    if is_sqlite:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    stamp: Stamp = _sqlite_stamp if is_sqlite else (lambda moment: moment)
    with engine.begin() as conn:
        indexes = _drop_indexes(conn) if is_sqlite else _drop_pg_indexes(conn)
        for chunk in _chunks(tickets, seed, now, stamp):
            for model, values in chunk.items():
                if values:
                    _insert(conn, model, values)
                    rows += len(values)
        for statement in indexes:  # built once, sorted: far faster than row by row
            conn.exec_driver_sql(statement)
        if not is_sqlite:
            _reset_sequences(conn)
    if not is_sqlite:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # As after years of use: vacuumed and analysed, so that autovacuum
            # does not work through the freshly loaded rows during the run.
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
    engine.dispose()
    # The bulk load leaves gigabytes of dirty pages that the kernel writes back
    # for tens of seconds: on a database at rest they are on disk already, and
    # the runs that follow must not pay for the load's write-back.
    os.sync()
    return {
        "tickets": tickets,
        "rows": rows,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }
