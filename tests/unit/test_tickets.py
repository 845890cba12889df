"""core/tickets.py: what a command or a due timer does to a ticket. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maild.core.commands import Command, CommandKind
from maild.core.permissions import Actor, Allowed, decide
from maild.core.sla import BusinessCalendar
from maild.core.tickets import (
    after_command,
    after_timer,
    facts_of,
    ticket_view,
)
from maild.domain import (
    CloseReason,
    EventKind,
    Person,
    Role,
    SlaPolicy,
    Ticket,
    TicketState,
    Timer,
    Timers,
    Urgency,
)
from tests.support.factories import make_ticket

POLICY = SlaPolicy(
    callback={
        Urgency.HIGH: timedelta(hours=1),
        Urgency.MEDIUM: timedelta(hours=4),
        Urgency.LOW: timedelta(hours=8),
    }
)
CALENDAR = BusinessCalendar.from_policy(POLICY)
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Paris
ALICE = Actor("alice@example.com", Role.TECHNICIAN)
MARIE = Actor("marie@example.com")
K = CommandKind


def apply(
    ticket_state: TicketState, actor: Actor, command: Command, **fields: Any
) -> Ticket:
    ticket = make_ticket(status=ticket_state, **fields)
    facts = facts_of(ticket)
    decision = decide(actor, command, facts, assignees={"bob@example.com"})
    assert isinstance(decision, Allowed), decision
    return after_command(ticket, facts, actor, command, decision, NOW, POLICY, CALENDAR)


def test_claim_takes_the_ticket_and_stops_the_reannouncements() -> None:
    ticket = apply(
        TicketState.NEW, ALICE, Command(K.CLAIM), timers=Timers(reannounce_at=NOW)
    )
    assert (ticket.status, ticket.owner) == (TicketState.IN_PROGRESS, ALICE.address)
    assert ticket.timers.reannounce_at is None


def test_the_first_call_meets_the_callback_once() -> None:
    owned = {"owner": ALICE.address}
    called = apply(TicketState.IN_PROGRESS, ALICE, Command(K.CALL), **owned)
    assert (called.first_call_at, called.callback_met) == (NOW, True)
    later = replace(called, first_call_at=NOW - timedelta(hours=1))
    facts = facts_of(later)
    again = after_command(
        later,
        facts,
        ALICE,
        Command(K.PDR),
        Allowed(EventKind.PDR, TicketState.IN_PROGRESS),
        NOW,
        POLICY,
        CALENDAR,
    )
    assert again.first_call_at == NOW - timedelta(hours=1)
    assert again.timers.pdr_retry_at is not None


def test_a_late_first_call_misses_and_no_deadline_leaves_it_unknown() -> None:
    owned = {"owner": ALICE.address}
    late = apply(
        TicketState.IN_PROGRESS,
        ALICE,
        Command(K.RESOLVED, text="done"),
        callback_due_at=NOW - timedelta(minutes=1),
        **owned,
    )
    assert (late.status, late.callback_met, late.resolved_at) == (
        TicketState.RESOLVED,
        False,
        NOW,
    )
    assert late.timers == Timers(auto_close_at=NOW + POLICY.auto_close_after)
    unknown = apply(
        TicketState.IN_PROGRESS,
        ALICE,
        Command(K.CALL),
        callback_due_at=None,
        **owned,
    )
    assert (unknown.first_call_at, unknown.callback_met) == (NOW, None)


@pytest.mark.parametrize(
    ("state", "actor", "command", "expected"),
    [
        (
            TicketState.RESOLVED,
            MARIE,
            Command(K.REFUSE, text="still broken"),
            {"status": TicketState.IN_PROGRESS, "resolved_at": None},
        ),
        (
            TicketState.RESOLVED,
            MARIE,
            Command(K.ACCEPT),
            {"status": TicketState.CLOSED, "close_reason": CloseReason.ACCEPTED},
        ),
        (
            TicketState.NEW,
            MARIE,
            Command(K.CANCEL),
            {"status": TicketState.CLOSED, "close_reason": CloseReason.CANCELLED},
        ),
        (
            TicketState.CLOSED,
            MARIE,
            Command(K.RATE, score=4, text="good"),
            {"rating_score": 4, "rating_comment": "good"},
        ),
        (
            TicketState.IN_PROGRESS,
            Actor("chef@example.com", Role.SUPERVISOR),
            Command(K.ASSIGN, address="bob@example.com"),
            {"owner": "bob@example.com"},
        ),
        (
            TicketState.IN_PROGRESS,
            ALICE,
            Command(K.RELEASE),
            {"status": TicketState.NEW, "owner": None},
        ),
        (
            TicketState.IN_PROGRESS,
            ALICE,
            Command(K.NOTE, text="spooler"),
            {"status": TicketState.IN_PROGRESS},
        ),
    ],
)
def test_what_each_command_changes(
    state: TicketState, actor: Actor, command: Command, expected: dict[str, object]
) -> None:
    owner = ALICE.address if state is not TicketState.NEW else None
    ticket = apply(state, actor, command, owner=owner, resolved_at=NOW)
    for field, value in expected.items():
        assert getattr(ticket, field) == value, field


@pytest.mark.parametrize(
    ("timer", "state", "event"),
    [
        (Timer.REMINDER, TicketState.IN_PROGRESS, EventKind.REMINDER),
        (Timer.PDR_RETRY, TicketState.IN_PROGRESS, EventKind.REMINDER),
        (Timer.BREACH, TicketState.NEW, EventKind.BREACH),
        (Timer.REANNOUNCE, TicketState.NEW, EventKind.REANNOUNCED),
        (Timer.AUTO_CLOSE, TicketState.RESOLVED, EventKind.AUTO_CLOSED),
        # No longer applies: cleared, nothing said.
        (Timer.REANNOUNCE, TicketState.IN_PROGRESS, None),
        (Timer.AUTO_CLOSE, TicketState.IN_PROGRESS, None),
    ],
)
def test_a_due_timer(timer: Timer, state: TicketState, event: EventKind | None) -> None:
    timers = Timers(
        reminder_at=NOW,
        breach_at=NOW,
        reannounce_at=NOW,
        pdr_retry_at=NOW,
        auto_close_at=NOW,
    )
    firing = after_timer(
        make_ticket(status=state, timers=timers), timer, NOW, POLICY, CALENDAR
    )
    assert firing.event is event
    due = firing.ticket.timers.due_at(timer)
    assert due is None or due > NOW  # cleared, or the next re-announcement


def test_auto_close_goes_through_the_state_machine() -> None:
    resolved = make_ticket(
        status=TicketState.RESOLVED, timers=Timers(auto_close_at=NOW)
    )
    closed = after_timer(resolved, Timer.AUTO_CLOSE, NOW, POLICY, CALENDAR).ticket
    assert (closed.status, closed.closed_at, closed.close_reason) == (
        TicketState.CLOSED,
        NOW,
        CloseReason.AUTO_CLOSED,
    )


def test_a_breach_without_a_call_is_missed_but_not_after_one() -> None:
    due = Timers(breach_at=NOW)
    missed = after_timer(make_ticket(timers=due), Timer.BREACH, NOW, POLICY, CALENDAR)
    assert missed.ticket.callback_met is False
    called = make_ticket(timers=due, first_call_at=NOW, callback_met=True)
    kept = after_timer(called, Timer.BREACH, NOW, POLICY, CALENDAR)
    assert kept.ticket.callback_met is True


def test_views_of_a_ticket() -> None:
    watcher = Person("Paul", "paul@example.com")
    ticket = make_ticket(owner=ALICE.address)
    view = ticket_view(ticket, [watcher], ["a.pdf"])
    assert (view.number, view.owner, view.watchers, view.attachment_names) == (
        ticket.number,
        ALICE.address,
        (watcher,),
        ("a.pdf",),
    )
    facts = facts_of(ticket, [watcher])
    assert facts.watchers == frozenset({"paul@example.com"})
    assert (facts.requester, facts.owner) == ("marie@example.com", ALICE.address)
