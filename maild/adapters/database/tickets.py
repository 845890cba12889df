"""Tickets between their rows and the domain's `Ticket` values. Statements only.

The rows never leave this adapter: a ticket is read as a frozen `Ticket`
(enums as enums, the five timer columns as `Timers`) and written back from
one. The statements are built once, as in store.py; `Tx` runs them.
"""

from __future__ import annotations

from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from maild.adapters.database.models import (
    AttachmentRow,
    OutboxRow,
    TicketRow,
    WatcherRow,
)
from maild.app.ports import TicketFilter
from maild.domain import (
    CloseReason,
    Person,
    Ticket,
    TicketState,
    TicketType,
    Timer,
    Timers,
    Urgency,
)

TICKETS = cast(Table, TicketRow.__table__)
_WATCHERS = cast(Table, WatcherRow.__table__)
_ATTACHMENTS = cast(Table, AttachmentRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_C = TICKETS.c

# Every column but id, number, token and the purge's mark (retention.py):
# what save_ticket writes back.
_SAVED: Final = tuple(
    c.key
    for c in TICKETS.columns
    if c.key not in {"id", "number", "token", "purged_at"}
)
_ALL_STATES: Final = frozenset(TicketState)
_TIMER_COLUMNS: Final = {
    Timer.REMINDER: _C.reminder_at,
    Timer.BREACH: _C.breach_at,
    Timer.REANNOUNCE: _C.reannounce_at,
    Timer.PDR_RETRY: _C.pdr_retry_at,
    Timer.AUTO_CLOSE: _C.auto_close_at,
}

SELECT: Final = select(*TICKETS.columns)
BY_NUMBER: Final = SELECT.where(_C.number == bindparam("number"))
BY_NUMBER_LOCKED: Final = BY_NUMBER.with_for_update()
BY_ID: Final = SELECT.where(_C.id == bindparam("ticket_id"))
BY_ID_LOCKED: Final = BY_ID.with_for_update()
INSERT: Final = insert(TICKETS).returning(_C.id)
UPDATE: Final = (
    update(TICKETS)
    .where(_C.id == bindparam("ticket_id"))
    .values({key: bindparam(f"new_{key}") for key in _SAVED})
)
OPENED_SINCE: Final = select(func.count(_C.id)).where(
    _C.requester_address == bindparam("requester"),
    _C.created_at >= bindparam("since"),
)
COUNT_BY_STATE: Final = (
    select(_C.status, func.count())
    .where(_C.status != TicketState.CLOSED.value)
    .group_by(_C.status)
)
WATCHERS: Final = (
    select(_WATCHERS.c.name, _WATCHERS.c.address)
    .where(_WATCHERS.c.ticket_id == bindparam("ticket_id"))
    .order_by(_WATCHERS.c.id)
)
ADD_WATCHER: Final = insert(_WATCHERS)
ATTACHMENT_NAMES: Final = (
    select(_ATTACHMENTS.c.filename)
    .where(_ATTACHMENTS.c.ticket_id == bindparam("ticket_id"))
    .order_by(_ATTACHMENTS.c.id)
)
PARTIES: Final = select(
    _C.id, _C.requester_address, _C.beneficiary_address, _C.owner
).where(_C.number == bindparam("number"))
FOR_MESSAGE_IDS: Final = (
    select(_C.number)
    .join(_OUTBOX, _OUTBOX.c.ticket_id == _C.id)
    .where(_OUTBOX.c.message_id.in_(bindparam("message_ids", expanding=True)))
    .limit(1)
)
_DUE: Final = {
    timer: select(_C.id)
    .where(column <= bindparam("now"))
    .order_by(column, _C.id)
    .limit(bindparam("limit"))
    for timer, column in _TIMER_COLUMNS.items()
}


def ticket_of(row: Row[Any]) -> Ticket:
    """The ticket a row of SELECT holds."""
    return Ticket(
        id=row.id,
        number=row.number,
        token=row.token,
        ticket_type=TicketType(row.ticket_type),
        status=TicketState(row.status),
        subject=row.subject,
        description=row.description,
        requester=Person(row.requester_name, row.requester_address),
        beneficiary=Person(row.beneficiary_name, row.beneficiary_address),
        application=row.application,
        urgency=Urgency(row.urgency),
        phone=row.phone,
        owner=row.owner,
        created_at=row.created_at,
        callback_due_at=row.callback_due_at,
        timers=Timers(
            row.reminder_at,
            row.breach_at,
            row.reannounce_at,
            row.pdr_retry_at,
            row.auto_close_at,
        ),
        first_call_at=row.first_call_at,
        callback_met=row.callback_met,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        close_reason=CloseReason(row.close_reason) if row.close_reason else None,
        rating_score=row.rating_score,
        rating_comment=row.rating_comment,
        source_mail_id=row.source_mail_id,
        unverified_sender=row.unverified_sender,
    )


def saved_values(ticket: Ticket) -> dict[str, Any]:
    """The columns of a ticket but id, number and token, by name."""
    timers = ticket.timers
    return {
        "ticket_type": ticket.ticket_type.value,
        "status": ticket.status.value,
        "subject": ticket.subject,
        "description": ticket.description,
        "requester_name": ticket.requester.name,
        "requester_address": ticket.requester.address,
        "beneficiary_name": ticket.beneficiary.name,
        "beneficiary_address": ticket.beneficiary.address,
        "application": ticket.application,
        "urgency": ticket.urgency.value,
        "phone": ticket.phone,
        "owner": ticket.owner,
        "created_at": ticket.created_at,
        "callback_due_at": ticket.callback_due_at,
        "first_call_at": ticket.first_call_at,
        "callback_met": ticket.callback_met,
        "resolved_at": ticket.resolved_at,
        "closed_at": ticket.closed_at,
        "close_reason": (
            ticket.close_reason.value if ticket.close_reason is not None else None
        ),
        "rating_score": ticket.rating_score,
        "rating_comment": ticket.rating_comment,
        "source_mail_id": ticket.source_mail_id,
        "unverified_sender": ticket.unverified_sender,
        "reminder_at": timers.reminder_at,
        "breach_at": timers.breach_at,
        "reannounce_at": timers.reannounce_at,
        "pdr_retry_at": timers.pdr_retry_at,
        "auto_close_at": timers.auto_close_at,
    }


def insert_values(ticket: Ticket) -> dict[str, Any]:
    """The parameters of INSERT for a new ticket."""
    return {"number": ticket.number, "token": ticket.token, **saved_values(ticket)}


def update_values(ticket: Ticket) -> dict[str, Any]:
    """The parameters of UPDATE for a changed ticket."""
    values = {f"new_{key}": value for key, value in saved_values(ticket).items()}
    values["ticket_id"] = ticket.id
    return values


def listing(which: TicketFilter, limit: int) -> Select[Any]:
    """The tickets a filter asks for, most urgent call-back first, then by id."""
    conditions: list[ColumnElement[bool]] = []
    if which.states != _ALL_STATES:
        conditions.append(_C.status.in_(sorted(s.value for s in which.states)))
    if which.party is not None:
        party = which.party
        conditions.append(
            or_(_C.requester_address == party, _C.beneficiary_address == party)
        )
    if which.owner is not None:
        conditions.append(_C.owner == which.owner)
    if which.owner_or_pool is not None:
        conditions.append(or_(_C.owner == which.owner_or_pool, _C.owner.is_(None)))
    if which.is_callback_missed:
        conditions.append(_C.callback_met.is_(False))
    if which.breach_before is not None:
        conditions.append(_C.breach_at <= which.breach_before)
    # NULLS LAST said aloud: SQLite and PostgreSQL disagree on the default.
    return (
        SELECT.where(*conditions)
        .order_by(_C.callback_due_at.asc().nulls_last(), _C.id)
        .limit(limit)
    )


def due(timer: Timer) -> Select[Any]:
    """The ids of tickets whose timer is due at :now, the earliest first."""
    return _DUE[timer]
