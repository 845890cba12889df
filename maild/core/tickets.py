"""Step: what happens to a ticket: (Ticket, what was decided, now) -> Ticket. Pure.

The use cases load a ticket, ask core/permissions whether a command is
allowed, and ask this module for the ticket it leaves: state through
core/workflow, owner, the fields the command sets (first call, resolution,
closure, rating) and the SLA timers (core/timers). A timer that falls due
changes the ticket the same way, through the same state machine: automatic
closure is the AUTO_CLOSED event of core/workflow, not a column written by
hand. Also here: the views notifications and permissions read of a ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, assert_never

from maild.core.commands import Command, CommandKind
from maild.core.permissions import Actor, Allowed, TicketFacts, facts_after
from maild.core.sla import BusinessCalendar, callback_status
from maild.core.timers import timers_after, timers_after_firing
from maild.core.workflow import allowed_in, state_after
from maild.domain import (
    CloseReason,
    EventKind,
    Person,
    SlaPolicy,
    Ticket,
    TicketView,
    Timer,
)

# Events whose text stays with staff: never sent to the requester.
INTERNAL_EVENTS: Final = frozenset(
    {EventKind.CALL, EventKind.PDR, EventKind.TASK, EventKind.NOTE}
)
TIMER_EVENTS: Final = {
    Timer.REMINDER: EventKind.REMINDER,
    Timer.PDR_RETRY: EventKind.REMINDER,
    Timer.BREACH: EventKind.BREACH,
    Timer.REANNOUNCE: EventKind.REANNOUNCED,
    Timer.AUTO_CLOSE: EventKind.AUTO_CLOSED,
}


def ticket_view(
    ticket: Ticket,
    watchers: Sequence[Person] = (),
    attachment_names: Sequence[str] = (),
) -> TicketView:
    """The ticket as notifications may show it."""
    return TicketView(
        number=ticket.number,
        ticket_type=ticket.ticket_type,
        status=ticket.status,
        subject=ticket.subject,
        description=ticket.description,
        requester=ticket.requester,
        beneficiary=ticket.beneficiary,
        application=ticket.application,
        urgency=ticket.urgency,
        phone=ticket.phone,
        owner=ticket.owner,
        created_at=ticket.created_at,
        callback_due_at=ticket.callback_due_at,
        watchers=tuple(watchers),
        attachment_names=tuple(attachment_names),
        unverified_sender=ticket.unverified_sender,
    )


def facts_of(ticket: Ticket, watchers: Sequence[Person] = ()) -> TicketFacts:
    """What permissions depend on about a ticket."""
    return TicketFacts(
        requester=ticket.requester.address,
        beneficiary=ticket.beneficiary.address,
        state=ticket.status,
        owner=ticket.owner,
        watchers=frozenset(w.address for w in watchers),
        close_reason=ticket.close_reason,
    )


def after_staff_mail(ticket: Ticket, actor: Actor, *, is_verified: bool) -> Ticket:
    """The ticket once a mail from its sender has been read: a verified mail
    from staff lifts the hold an unverified requester put on it (staff have
    seen it; from now on the requester is told as on any ticket)."""
    if ticket.unverified_sender and actor.is_staff and is_verified:
        return replace(ticket, unverified_sender="")
    return ticket


def after_command(
    ticket: Ticket,
    facts: TicketFacts,
    actor: Actor,
    command: Command,
    decision: Allowed,
    now: datetime,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
) -> Ticket:
    """Return the ticket as an allowed command leaves it."""
    changed = replace(
        ticket,
        owner=facts_after(facts, actor, command).owner,
        status=decision.next_state,
        timers=timers_after(decision.event, ticket.timers, now, policy, calendar),
    )
    return _with_effect(changed, command, now)


def _with_effect(ticket: Ticket, command: Command, now: datetime) -> Ticket:
    """What a command changes on the ticket besides its state, owner and timers."""
    match command.kind:
        case CommandKind.CALL | CommandKind.PDR:
            return _first_call(ticket, now)
        case CommandKind.RESOLVED:
            return replace(_first_call(ticket, now), resolved_at=now)
        case CommandKind.REFUSE:
            return replace(ticket, resolved_at=None)
        case CommandKind.ACCEPT:
            return replace(ticket, closed_at=now, close_reason=CloseReason.ACCEPTED)
        case CommandKind.CANCEL:
            return replace(ticket, closed_at=now, close_reason=CloseReason.CANCELLED)
        case CommandKind.RATE:
            return replace(
                ticket, rating_score=command.score, rating_comment=command.text
            )
        case (
            CommandKind.CLAIM
            | CommandKind.RELEASE
            | CommandKind.ASSIGN
            | CommandKind.TASK
            | CommandKind.NOTE
        ):
            return ticket  # state and owner only
        case _:  # pragma: no cover - exhaustive, checked by mypy
            assert_never(command.kind)


def _first_call(ticket: Ticket, now: datetime) -> Ticket:
    """The first CALL, PDR or RESOLVED meets (or misses) the call-back SLA."""
    if ticket.first_call_at is not None:
        return ticket
    met = (
        callback_status(ticket.callback_due_at, now, now)
        if ticket.callback_due_at is not None
        else ticket.callback_met
    )
    return replace(ticket, first_call_at=now, callback_met=met)


@dataclass(frozen=True, slots=True)
class TimerFiring:
    """What a due timer does: the ticket it leaves and, if it fired, its event.

    `event` is None when the timer no longer applies (a re-announcement of a
    ticket claimed meanwhile, an automatic closure of a ticket refused): it
    is only cleared, and nobody is told.
    """

    ticket: Ticket
    event: EventKind | None


def after_timer(
    ticket: Ticket,
    timer: Timer,
    now: datetime,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
) -> TimerFiring:
    """Return what a timer due at now does to the ticket."""
    event = TIMER_EVENTS[timer]
    if not allowed_in(ticket.status, event):
        return TimerFiring(_cleared(ticket, timer), None)
    changed = replace(
        ticket,
        status=state_after(ticket.status, event),
        timers=timers_after_firing(timer, ticket.timers, now, policy, calendar),
    )
    if event is EventKind.AUTO_CLOSED:
        changed = replace(changed, closed_at=now, close_reason=CloseReason.AUTO_CLOSED)
    if timer is Timer.BREACH and ticket.first_call_at is None:
        changed = replace(changed, callback_met=False)
    return TimerFiring(changed, event)


def _cleared(ticket: Ticket, timer: Timer) -> Ticket:
    field = {
        Timer.REMINDER: "reminder_at",
        Timer.BREACH: "breach_at",
        Timer.REANNOUNCE: "reannounce_at",
        Timer.PDR_RETRY: "pdr_retry_at",
        Timer.AUTO_CLOSE: "auto_close_at",
    }[timer]
    return replace(ticket, timers=replace(ticket.timers, **{field: None}))
