"""Tickets between their database rows and the core's values. Wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from maild.adapters.database.models import TicketRow
from maild.adapters.database.store import Tx, attachments_of, watchers_of
from maild.core.permissions import TicketFacts
from maild.domain import (
    CloseReason,
    EventKind,
    InboundMail,
    Person,
    TicketState,
    TicketType,
    TicketView,
    Timers,
    Urgency,
)


def facts_of(tx: Tx, row: TicketRow) -> TicketFacts:
    return TicketFacts(
        requester=row.requester_address,
        beneficiary=row.beneficiary_address,
        state=TicketState(row.status),
        owner=row.owner,
        watchers=frozenset(w.address for w in watchers_of(tx.session, row.id)),
        close_reason=CloseReason(row.close_reason) if row.close_reason else None,
    )


def view_of(tx: Tx, row: TicketRow) -> TicketView:
    """The ticket as notifications may show it."""
    return ticket_view(
        row,
        [Person(w.name, w.address) for w in watchers_of(tx.session, row.id)],
        [a.filename for a in attachments_of(tx.session, row.id)],
    )


def ticket_view(
    row: TicketRow,
    watchers: Sequence[Person],
    attachment_names: Sequence[str],
) -> TicketView:
    """Build the view of a ticket from its row."""
    return TicketView(
        number=row.number,
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
        watchers=tuple(watchers),
        attachment_names=tuple(attachment_names),
    )


def add_watchers(tx: Tx, row: TicketRow, watchers: tuple[Person, ...]) -> None:
    tx.add_watchers(row.id, [(w.name, w.address) for w in watchers])


def timers_of(row: TicketRow) -> Timers:
    return Timers(
        row.reminder_at,
        row.breach_at,
        row.reannounce_at,
        row.pdr_retry_at,
        row.auto_close_at,
    )


def set_timers(row: TicketRow, timers: Timers) -> None:
    row.reminder_at, row.breach_at, row.reannounce_at = (
        timers.reminder_at,
        timers.breach_at,
        timers.reannounce_at,
    )
    row.pdr_retry_at, row.auto_close_at = timers.pdr_retry_at, timers.auto_close_at


MAILD = "maild"  # the actor of what the daemon does by itself


def add_maild_event(
    tx: Tx,
    ticket: TicketRow,
    kind: EventKind,
    now: datetime,
    text: str,
    message_id: str | None = None,
) -> None:
    """Record an internal event of maild's own doing (a notification sent or
    failed, a timer fired)."""
    tx.add_event(ticket.id, kind, MAILD, now, text, message_id, is_internal=True)


def add_mail_event(
    tx: Tx,
    ticket: TicketRow,
    kind: EventKind,
    actor: str,
    now: datetime,
    text: str,
    mail: InboundMail,
    mail_id: int,
    *,
    is_internal: bool = False,
) -> int:
    """Record an event on a ticket caused by a mail (its Message-ID and record);
    return the event's id."""
    return tx.add_event(
        ticket.id,
        kind,
        actor,
        now,
        text,
        mail.message_id,
        is_internal=is_internal,
        mail_id=mail_id,
    )
