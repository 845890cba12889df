"""The records of mails taken in: registered, counted, finished. Statements only.

A mail is known by its place in a mailbox (source, UIDVALIDITY, UID) and by
the hash of its bytes; each attempt at handling it is counted, and it is
finished once (MailAlreadyFinished for the second). The statements run for
every mail, built once: SQLAlchemy then skips building them and working out
their cache key each time (about a tenth of the CPU a mail cost). Their rows
need no ORM object either. `Store` and `Tx` call these in their transactions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    CursorResult,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maild.adapters.database.models import MailRow
from maild.domain import InboundMail, MailOrigin, MailRecord, MailState
from maild.errors import MailAlreadyFinished

log = logging.getLogger(__name__)

_SUBJECT_CHARS: Final = 998  # of a subject kept on a mail's record, as a header line

_MAILS = cast(Table, MailRow.__table__)
_C = _MAILS.c


@dataclass(frozen=True, slots=True)
class KeptMail:
    """A quarantined mail taken out again for a new attempt: its bytes and place."""

    id: int
    raw: bytes
    origin: MailOrigin


_MAIL_RECORD: Final = select(
    _C.id, _C.source, _C.uidvalidity, _C.uid, _C.content_hash, _C.state,
    _C.attempts, _C.reason,
).order_by(_C.id)  # fmt: skip
_BY_HASH: Final = _MAIL_RECORD.where(_C.content_hash == bindparam("content_hash"))
_AT_OR_BY_HASH: Final = _MAIL_RECORD.where(
    or_(
        and_(
            _C.source == bindparam("source"),
            _C.uidvalidity == bindparam("uidvalidity"),
            _C.uid == bindparam("uid"),
        ),
        _C.content_hash == bindparam("content_hash"),
    )
)
# Another instance may register the same bytes at the same moment: the unique
# index on the hash keeps one record, and the loser reads it (see register).
_ADD: Final = {
    name: dialect.insert(_MAILS).on_conflict_do_nothing().returning(_C.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_COUNT_ATTEMPT: Final = (
    update(_MAILS)
    .where(_C.id == bindparam("mail_id"))
    .values(attempts=_C.attempts + 1)
    .returning(_C.attempts)
)
_STATE: Final = select(_C.state).where(_C.id == bindparam("mail_id"))
_PENDING: Final = and_(
    _C.id == bindparam("mail_id"), _C.state == MailState.PENDING.value
)
_FINISHED: Final[dict[str, Any]] = {
    "state": bindparam("to_state"),
    "reason": bindparam("to_reason"),
    "ticket_id": bindparam("to_ticket_id"),
    "handled_at": bindparam("to_handled_at"),
}
_FINISH: Final = update(_MAILS).where(_PENDING).values(**_FINISHED)
_FINISH_PARSED: Final = (
    update(_MAILS)
    .where(_PENDING)
    .values(
        **_FINISHED,
        message_id=bindparam("to_message_id"),
        sender=bindparam("to_sender"),
        subject=bindparam("to_subject"),
    )
)


def register(
    session: Session,
    origin: MailOrigin,
    content_hash: str,
    size: int,
    blob: str,
    now: datetime,
) -> MailRecord:
    """Record a mail taken in (or find its record) and count an attempt on it.

    Its Message-ID, sender and subject are written when it is finished, once
    parsed.
    """
    row = _find(session, origin, content_hash)
    if row is None:
        dialect = session.get_bind().dialect.name
        new_id = session.execute(
            _ADD["postgresql" if dialect == "postgresql" else "sqlite"],
            {
                "source": origin.source,
                "uidvalidity": origin.uidvalidity,
                "uid": origin.uid,
                "content_hash": content_hash,
                "message_id": "",
                "sender": "",
                "subject": "",
                "size": size,
                "attempts": 1,
                "state": MailState.PENDING.value,
                "reason": "",
                "ticket_id": None,
                "received_at": now,
                "handled_at": None,
                "blob_sha256": blob,
            },
        ).scalar_one_or_none()
        if new_id is not None:
            return MailRecord(int(new_id), MailState.PENDING, 1, "", True)
        # Registered meanwhile by another instance, committed: its record stands.
        row = _find(session, origin, content_hash)
        if row is None:  # a place taken by other bytes: not ours to guess
            raise LookupError(f"mail at {origin.source} {origin.uid} vanished")
    if row.state == MailState.PENDING.value:
        attempts = session.execute(_COUNT_ATTEMPT, {"mail_id": row.id}).scalar_one()
        return MailRecord(row.id, MailState.PENDING, attempts, row.reason, False)
    return record_of(row, is_new=False)


def finish(
    session: Session,
    mail_id: int,
    state: MailState,
    reason: str,
    ticket_id: int | None,
    now: datetime,
    mail: InboundMail | None,
) -> None:
    """Record what became of a pending mail; MailAlreadyFinished if it had ended.

    One UPDATE that only a pending row matches: it locks the row (PostgreSQL;
    SQLite's write lock is held already), so of two handlings of one mail the
    second finds it finished.
    """
    values: dict[str, object] = {
        "mail_id": mail_id,
        "to_state": state.value,
        "to_reason": reason,
        "to_ticket_id": ticket_id,
        "to_handled_at": now,
    }
    stmt = _FINISH
    if mail is not None:
        stmt = _FINISH_PARSED
        values["to_message_id"] = mail.message_id[:998]
        values["to_sender"] = mail.sender.address[:320]
        values["to_subject"] = mail.subject[:_SUBJECT_CHARS]
    done = session.execute(stmt, values)
    if cast(CursorResult[Any], done).rowcount == 1:
        return
    found = session.execute(_STATE, {"mail_id": mail_id}).scalar_one_or_none()
    if found is None:
        raise LookupError(mail_id)
    raise MailAlreadyFinished(mail_id, MailState(found))


def record_of(row: Any, *, is_new: bool) -> MailRecord:
    """The record of a MailRow, or of a row of _MAIL_RECORD."""
    return MailRecord(row.id, MailState(row.state), row.attempts, row.reason, is_new)


def _find(session: Session, origin: MailOrigin, content_hash: str) -> Any:
    """The record of this mail: by its place in the mailbox, else by its bytes.

    One query for both: the rows at this (source, UIDVALIDITY, UID) or with
    these bytes, the oldest first. Returns the row of _MAIL_RECORD, or None.
    """
    if origin.uid is not None and origin.uidvalidity is not None:
        where = {
            "source": origin.source,
            "uidvalidity": origin.uidvalidity,
            "uid": origin.uid,
            "content_hash": content_hash,
        }
        rows = list(session.execute(_AT_OR_BY_HASH, where))
    else:  # the SMTP intake, a replay: known by the bytes alone
        rows = list(session.execute(_BY_HASH, {"content_hash": content_hash}))
    for row in rows:
        if origin.uid is not None and (row.source, row.uidvalidity, row.uid) == (
            origin.source,
            origin.uidvalidity,
            origin.uid,
        ):
            return row
    # The same bytes again (an MTA retry after a lost 250, a copy under a new
    # UID, the mailbox renumbered): the first record stands for it.
    first = next((r for r in rows if r.content_hash == content_hash), None)
    if (
        first is not None
        and origin.uid is not None
        and first.source == origin.source
        and first.uidvalidity != origin.uidvalidity
    ):
        log.warning(
            "mail %s seen again under UIDVALIDITY %s (was %s/%s): known by its hash",
            first.id,
            origin.uidvalidity,
            first.uidvalidity,
            first.uid,
        )
    return first
