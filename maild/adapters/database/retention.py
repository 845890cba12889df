"""Retention and erasure on the database: raw bytes dropped, blobs swept. I/O.

A ticket's raw mails and attachments are dropped in the caller's
transaction: the attachment rows go, the mails' records stay (what became
of each mail is kept, `maild mails list`) with their bytes' key emptied,
and every blob key they named is written to `blob_sweep` in that same
transaction. The sweep then removes a file only when no row names its blob
any more, in a write transaction of its own: on SQLite it holds the write
lock, on PostgreSQL an advisory lock that every transaction storing a blob
takes shared (`hold_blob_lock`), so a mail that brings the same bytes again
either commits first (and the file stays) or finds the file gone and writes
it again. A crash between the purge's commit and the sweep leaves the keys
in `blob_sweep` for the next run: no orphan file survives two runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    exists,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.models import (
    AttachmentRow,
    BlobSweepRow,
    MailRow,
    OutboxRow,
    TicketRow,
)
from maild.core.retention import BlobName, Dropped
from maild.domain import MailState, TicketState

_TICKETS = cast(Table, TicketRow.__table__)
_MAILS = cast(Table, MailRow.__table__)
_ATTACHMENTS = cast(Table, AttachmentRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_SWEEP = cast(Table, BlobSweepRow.__table__)
_BLOB_LOCK: Final = 0x6D61696C64  # "maild": the advisory lock of the blob files

# Expired tickets in the order of their closure (then id), from the index
# (purged_at, closed_at, id): a batch reads only the rows it takes, however
# many tickets were purged before. After a given ticket: the ones after it
# in that order (a cursor, so that a dry run, which marks nothing, moves on).
_DUE_WHERE: Final = (
    _TICKETS.c.purged_at.is_(None),
    _TICKETS.c.closed_at < bindparam("before"),
    _TICKETS.c.status == TicketState.CLOSED.value,
)
_AFTER: Final = (
    select(_TICKETS.c.closed_at)
    .where(_TICKETS.c.id == bindparam("after"))
    .scalar_subquery()
)
TICKETS_DUE_FIRST: Final = (
    select(_TICKETS.c.id)
    .where(*_DUE_WHERE)
    .order_by(_TICKETS.c.closed_at, _TICKETS.c.id)
    .limit(bindparam("limit"))
)
TICKETS_DUE_AFTER: Final = TICKETS_DUE_FIRST.where(
    tuple_(_TICKETS.c.closed_at, _TICKETS.c.id) > tuple_(_AFTER, bindparam("after"))
)
MAILS_DUE: Final = (
    select(_MAILS.c.id)
    .where(
        _MAILS.c.state.in_([MailState.QUARANTINED.value, MailState.IGNORED.value]),
        _MAILS.c.handled_at < bindparam("before"),
        _MAILS.c.blob_sha256 != "",
        _MAILS.c.id > bindparam("after"),
    )
    .order_by(_MAILS.c.id)
    .limit(bindparam("limit"))
)
_TICKET_MAIL_BLOBS: Final = select(_MAILS.c.blob_sha256).where(
    _MAILS.c.ticket_id == bindparam("for_ticket"), _MAILS.c.blob_sha256 != ""
)
_DROP_TICKET_MAIL_BYTES: Final = (
    update(_MAILS)
    .where(_MAILS.c.ticket_id == bindparam("for_ticket"), _MAILS.c.blob_sha256 != "")
    .values(blob_sha256="")
)
_TICKET_ATTACHMENT_BLOBS: Final = select(_ATTACHMENTS.c.sha256).where(
    _ATTACHMENTS.c.ticket_id == bindparam("for_ticket")
)
_DROP_ATTACHMENTS: Final = delete(_ATTACHMENTS).where(
    _ATTACHMENTS.c.ticket_id == bindparam("for_ticket")
)
# The copies of what was sent stay as records (threading knows their
# Message-IDs); their bytes go once delivered or failed.
_DROP_SENT_BYTES: Final = (
    update(_OUTBOX)
    .where(_OUTBOX.c.ticket_id == bindparam("for_ticket"), _OUTBOX.c.state != "pending")
    .values(data=b"")
    .returning(_OUTBOX.c.message_id)
)
_MARK_PURGED: Final = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("for_ticket"))
    .values(purged_at=bindparam("now"))
)
_MAIL_BLOB: Final = select(_MAILS.c.blob_sha256).where(
    _MAILS.c.id == bindparam("mail_id")
)
_DROP_MAIL_BYTES: Final = (
    update(_MAILS).where(_MAILS.c.id == bindparam("mail_id")).values(blob_sha256="")
)
_NAMED: Final = select(
    exists().where(_ATTACHMENTS.c.sha256 == bindparam("sha256"))
    | exists().where(_MAILS.c.blob_sha256 == bindparam("sha256"))
)
_MAIL_NAMES: Final = select(
    _MAILS.c.blob_sha256, _MAILS.c.ticket_id, _MAILS.c.id
).where(_MAILS.c.blob_sha256.in_(bindparam("shas", expanding=True)))
_ATTACHMENT_NAMES: Final = select(
    _ATTACHMENTS.c.sha256, _ATTACHMENTS.c.ticket_id
).where(_ATTACHMENTS.c.sha256.in_(bindparam("shas", expanding=True)))
_TO_SWEEP: Final = (
    select(_SWEEP.c.sha256).order_by(_SWEEP.c.sha256).limit(bindparam("limit"))
)
_SWEPT: Final = delete(_SWEEP).where(
    _SWEEP.c.sha256.in_(bindparam("shas", expanding=True))
)
_ADD_TO_SWEEP: Final = {
    "postgresql": postgresql.insert(_SWEEP).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_SWEEP).on_conflict_do_nothing(),
}
_EXCLUSIVE: Final = text("SELECT pg_advisory_xact_lock(:key)")
_SHARED: Final = text("SELECT pg_advisory_xact_lock_shared(:key)")


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def hold_blob_lock(session: Session) -> None:
    """Keep the sweep away while this transaction may name a blob (PostgreSQL)."""
    if _is_postgresql(session):
        session.execute(_SHARED, {"key": _BLOB_LOCK})


def to_sweep(session: Session, shas: Iterable[str]) -> None:
    """Note blobs a transaction stopped naming, for the sweep."""
    rows = [{"sha256": s} for s in sorted(set(shas)) if s]
    if rows:
        dialect = "postgresql" if _is_postgresql(session) else "sqlite"
        session.execute(_ADD_TO_SWEEP[dialect], rows)


def drop_ticket_bytes(
    session: Session, ticket_id: int, now: datetime | None
) -> Dropped:
    """Drop a ticket's raw mails and attachments and the bytes of what was sent
    on it; mark it purged at now (if given)."""
    key = {"for_ticket": ticket_id}
    mail_blobs = list(session.execute(_TICKET_MAIL_BLOBS, key).scalars())
    attachment_blobs = list(session.execute(_TICKET_ATTACHMENT_BLOBS, key).scalars())
    session.execute(_DROP_TICKET_MAIL_BYTES, key)
    session.execute(_DROP_ATTACHMENTS, key)
    sent = tuple(sorted(session.execute(_DROP_SENT_BYTES, key).scalars()))
    if now is not None:
        session.execute(_MARK_PURGED, {**key, "now": now})
    shas = frozenset(mail_blobs + attachment_blobs)
    to_sweep(session, shas)
    return Dropped(len(mail_blobs), len(attachment_blobs), shas, sent)


def drop_mail_bytes(session: Session, mail_id: int) -> frozenset[str]:
    """Drop the raw bytes of one mail; return the blob it named (if any)."""
    sha = session.execute(_MAIL_BLOB, {"mail_id": mail_id}).scalar_one_or_none()
    if not sha:
        return frozenset()
    session.execute(_DROP_MAIL_BYTES, {"mail_id": mail_id})
    to_sweep(session, [sha])
    return frozenset({sha})


def unnamed(session: Session, shas: Iterable[str]) -> frozenset[str]:
    """The blobs among shas that no row names (now, in this transaction)."""
    return frozenset(
        s for s in shas if not session.execute(_NAMED, {"sha256": s}).scalar_one()
    )


_CHUNK: Final = 500  # blobs a statement asks about (SQLite's bound parameters)


def blob_names(session: Session, shas: Iterable[str]) -> list[BlobName]:
    """Every mail and attachment row that names one of these blobs."""
    wanted = sorted(set(shas))
    names: list[BlobName] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = {"shas": wanted[start : start + _CHUNK]}
        names += [
            BlobName(sha, ticket_id, mail_id)
            for sha, ticket_id, mail_id in session.execute(_MAIL_NAMES, chunk)
        ]
        names += [
            BlobName(sha, ticket_id, None)
            for sha, ticket_id in session.execute(_ATTACHMENT_NAMES, chunk)
        ]
    return names


def sweep_batch(session: Session, blobs: BlobStore, limit: int) -> tuple[int, int]:
    """Remove the files of noted blobs nothing names; return (looked at, removed).

    Runs in a write transaction (see the module's docstring for why).
    """
    if _is_postgresql(session):
        session.execute(_EXCLUSIVE, {"key": _BLOB_LOCK})
    shas = list(session.execute(_TO_SWEEP, {"limit": limit}).scalars())
    removed = 0
    for sha in unnamed(session, shas):
        removed += blobs.remove(sha)
    if shas:
        session.execute(_SWEPT, {"shas": shas})
    return len(shas), removed
