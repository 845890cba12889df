"""Read model for `maild mails list|show`: every mail taken in and its fate.

I/O (database reads). The shapes are SPEC's command-line contract
("Production interfaces (second wave)"): keys are added, never renamed.

A mail's outcome is read from its record: `ticket` when it opened the ticket
its record names (that ticket's source_mail_id is the mail, or the record
says "ticket …"), `reply` when it was applied to a ticket or answered (HELP,
LIST), `ignored`, `quarantined`, or `pending` while it is not handled yet.
`reason` is the recorded one for ignored and quarantined mails, null for
tickets and replies (`show` gives the recorded line of those as `summary`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Select, case, func, or_, select

from maild.adapters.database.models import EventRow, MailRow, TicketRow
from maild.adapters.database.report import Json, iso
from maild.adapters.database.store import Store
from maild.domain import MailOutcome, MailState

# What a mail came to: an outcome once handled, pending until then.
Fate = MailOutcome | Literal[MailState.PENDING]
FATES: Final[tuple[Fate, ...]] = (*MailOutcome, MailState.PENDING)

_OPENED_ITS_TICKET: Final = or_(
    TicketRow.source_mail_id == MailRow.id, MailRow.reason.like("ticket %")
)
# No ticket joined: the comparison is NULL, and a done mail is a reply.
_FATE: Final = case(
    (MailRow.state == MailState.PENDING.value, MailState.PENDING.value),
    (MailRow.state == MailState.IGNORED.value, MailOutcome.IGNORED.value),
    (MailRow.state == MailState.QUARANTINED.value, MailOutcome.QUARANTINED.value),
    (_OPENED_ITS_TICKET, MailOutcome.TICKET.value),
    else_=MailOutcome.REPLY.value,
).label("fate")


def list_mails(
    store: Store, fate: Fate | None = None, since: datetime | None = None
) -> list[Json]:
    """Every mail received (since a moment), oldest first; those of one fate."""
    stmt = _mails().order_by(MailRow.id)
    if fate is not None:
        stmt = stmt.where(_FATE == fate.value)  # noqa: SIM300 - a column
    if since is not None:
        stmt = stmt.where(MailRow.received_at >= since)
    with store.reading() as session:
        return [_mail_json(row) for row in session.execute(stmt)]


def show_mail(store: Store, mail_id: int) -> Json | None:
    """One mail as in `mails list`, with its record, its bytes and its ticket."""
    with store.reading() as session:
        row = session.execute(_mails().where(MailRow.id == mail_id)).one_or_none()
        if row is None:
            return None
        events = session.execute(
            select(EventRow.kind, EventRow.at, EventRow.text)
            .where(EventRow.mail_id == mail_id)
            .order_by(EventRow.id)
        ).all()
    data = _mail_json(row)
    data.update(
        {
            "state": row.state,
            "summary": row.reason,
            "attempts": row.attempts,
            "handled_at": iso(row.handled_at),
            "source": row.source,
            "uidvalidity": row.uidvalidity,
            "uid": row.uid,
            "size": row.size,
            "ticket_subject": row.ticket_subject,
            "ticket_status": row.ticket_status,
            "events": [
                {"kind": e.kind, "at": iso(e.at), "text": e.text} for e in events
            ],
            **_blob(store, row.blob_sha256),
        }
    )
    return data


def _mails() -> Select[*tuple[Any, ...]]:
    """A mail's columns, its fate, and the ticket its record names."""
    return select(
        MailRow.id,
        MailRow.received_at,
        MailRow.sender,
        MailRow.subject,
        MailRow.message_id,
        MailRow.state,
        MailRow.reason,
        MailRow.attempts,
        MailRow.handled_at,
        MailRow.source,
        MailRow.uidvalidity,
        MailRow.uid,
        MailRow.size,
        MailRow.blob_sha256,
        TicketRow.number.label("ticket_number"),
        TicketRow.subject.label("ticket_subject"),
        TicketRow.status.label("ticket_status"),
        _FATE,
    ).outerjoin(TicketRow, TicketRow.id == MailRow.ticket_id)


def _mail_json(row: Any) -> Json:
    """The pinned shape of one mail in `maild mails list --json`."""
    return {
        "id": row.id,
        "received_at": iso(row.received_at),
        "sender": row.sender,
        "subject": row.subject,
        "message_id": row.message_id,
        "outcome": row.fate,
        "reason": _reason(row),
        "ticket": row.ticket_number,
    }


def _reason(row: Any) -> str | None:
    match row.fate:
        case MailOutcome.TICKET.value | MailOutcome.REPLY.value:
            return None
        case MailState.PENDING.value:
            tries = "attempt" if row.attempts == 1 else "attempts"
            return f"not handled yet ({row.attempts} {tries} so far)"
        case _:
            return str(row.reason)


def _blob(store: Store, sha256: str) -> Json:
    """Where the mail's bytes are kept, and whether they still are."""
    try:
        path = store.blobs.path_for(sha256)
    except ValueError:  # no digest recorded: nothing was kept
        return {"blob": None, "blob_sha256": sha256 or None, "blob_kept": False}
    return {"blob": str(path), "blob_sha256": sha256, "blob_kept": path.is_file()}


def count_by_fate(store: Store) -> dict[str, int]:
    """How many mails came to each outcome (pending included), every fate there."""
    counts = {fate.value: 0 for fate in FATES}
    stmt = (
        select(_FATE, func.count())
        .select_from(MailRow)
        .outerjoin(TicketRow, TicketRow.id == MailRow.ticket_id)
        .group_by(_FATE)
    )
    with store.reading() as session:
        for fate, count in session.execute(stmt):
            counts[fate] = int(count)
    return counts
