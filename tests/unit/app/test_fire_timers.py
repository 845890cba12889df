"""FireTimers: reminders, breach alerts, re-announcements, PDR retries and
automatic closure fire once each; the first three wait for business hours."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from maild.adapters.memory import MemoryStore
from maild.app.ports import MAILD
from maild.core.notices import Announced
from maild.domain import (
    CloseReason,
    EventKind,
    Person,
    Role,
    Ticket,
    TicketState,
    Timer,
    Timers,
)
from tests.unit.app.conftest import ALICE, CHEF, MARIE, MON, POOL, AppDesk

SAT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TUE = MON + timedelta(days=1)
PAUL = "paul@example.com"


def fire(desk: AppDesk, at: datetime) -> int:
    """The scheduler's tick at a moment, digests aside."""
    desk.clock.now = at
    return desk.app.timers.fire(at)


def claim(desk: AppDesk, ticket: Ticket, text: str = "CLAIM") -> Ticket:
    desk.reply(ticket, ALICE, text)
    return desk.ticket(ticket.number)


def kinds(desk: AppDesk, ticket: Ticket) -> list[EventKind]:
    timer_events = {EventKind.REMINDER, EventKind.BREACH, EventKind.REANNOUNCED}
    return [e.kind for e in desk.events(ticket) if e.kind in timer_events]


@pytest.mark.parametrize(("is_claimed", "to"), [(False, POOL), (True, ALICE)])
def test_the_reminder_goes_once_to_the_owner_or_the_pool(
    desk: AppDesk, is_claimed: bool, to: str
) -> None:
    ticket = desk.open()  # medium: reminder at 12:00, due at 13:00
    if is_claimed:
        claim(desk, ticket)
    fire(desk, MON.replace(hour=11, minute=59))
    assert desk.sent("reminder.owner") == []
    fire(desk, MON.replace(hour=12))
    fire(desk, MON.replace(hour=12, minute=30))
    (reminder,) = desk.sent("reminder.owner")
    assert reminder.to == (to,)
    assert reminder.notice.ticket.number == ticket.number
    (event,) = desk.events(ticket, EventKind.REMINDER)
    assert (event.actor, event.text, event.is_internal) == (MAILD, "reminder", True)
    assert desk.ticket(ticket.number).timers.reminder_at is None


def test_a_missed_call_back_alerts_the_supervisors_once(desk: AppDesk) -> None:
    desk.store.add_staff("nadia@example.com", Role.SUPERVISOR)
    ticket = desk.open()
    for hour in (12, 13, 14, 15):
        fire(desk, MON.replace(hour=hour))  # the pool hears of it every time
    (alert,) = desk.sent("breach.supervisor")
    assert alert.to == (CHEF, "nadia@example.com")
    after = desk.ticket(ticket.number)
    assert after.callback_met is False
    assert (after.timers.breach_at, after.timers.reminder_at) == (None, None)
    assert kinds(desk, ticket).count(EventKind.BREACH) == 1


def test_without_supervisors_the_pool_hears_of_a_breach(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(helpdesk={"supervisors": []})
    desk.open(text="Urgency: high")
    fire(desk, MON.replace(hour=10))
    (alert,) = desk.sent("breach.supervisor")
    assert alert.to == (POOL,)


def test_an_unclaimed_ticket_is_announced_again_until_claimed(desk: AppDesk) -> None:
    ticket = desk.open()
    assert fire(desk, MON.replace(minute=29)) == 0
    assert fire(desk, MON.replace(minute=30)) == 1
    assert fire(desk, MON.replace(minute=45)) == 0
    assert fire(desk, MON.replace(hour=10)) == 1
    again = desk.sent("announcement.pool")[1:]
    assert [s.notice.announced for s in again] == [Announced.REANNOUNCED] * 2
    assert [s.to for s in again] == [(POOL,)] * 2
    claim(desk, ticket)
    assert desk.ticket(ticket.number).timers.reannounce_at is None
    fire(desk, MON.replace(hour=10, minute=30))
    assert len(desk.sent("announcement.pool")) == 3


def test_a_pdr_brings_a_retry_reminder_to_the_owner(desk: AppDesk) -> None:
    ticket = claim(desk, desk.open(), "CLAIM\nPDR voicemail")  # retry at 12:00 Paris
    assert fire(desk, MON.replace(hour=10, minute=59)) == 0
    assert fire(desk, MON.replace(hour=11)) == 1
    assert fire(desk, MON.replace(hour=11, minute=30)) == 0
    (retry,) = desk.sent("pdr_retry.owner")
    assert retry.to == (ALICE,)
    (event,) = desk.events(ticket, EventKind.REMINDER)
    assert event.text == "pdr_retry"
    assert desk.sent("breach.supervisor") == []  # the PDR met the call-back


@pytest.mark.parametrize(
    ("opened_at", "text", "timer", "template"),
    [
        # 15:00 in Paris, medium: the reminder falls at 18:00, the closing time
        (MON.replace(hour=14), "CLAIM", Timer.REMINDER, "reminder.owner"),
        # 17:30 in Paris: the re-announcement falls at 18:00
        (MON.replace(hour=16, minute=30), "", Timer.REANNOUNCE, "announcement.pool"),
        # a PDR at 16:00 in Paris: the retry falls at 18:00
        (MON.replace(hour=15), "CLAIM\nPDR", Timer.PDR_RETRY, "pdr_retry.owner"),
    ],
)
def test_reminders_wait_for_business_hours(
    desk: AppDesk, opened_at: datetime, text: str, timer: Timer, template: str
) -> None:
    desk.clock.now = opened_at
    ticket = desk.open()
    if text:
        ticket = claim(desk, ticket, text)
    due = ticket.timers.due_at(timer)
    assert due == MON.replace(hour=17)  # 18:00 in Paris
    before = len(desk.sent(template))
    for evening in (MON.replace(hour=17), MON.replace(hour=22), TUE.replace(hour=6)):
        fire(desk, evening)
        assert len(desk.sent(template)) == before
        assert desk.ticket(ticket.number).timers.due_at(timer) == due  # still due
    fire(desk, TUE.replace(hour=7))  # 08:00 in Paris
    fire(desk, TUE.replace(hour=7, minute=1))
    assert len(desk.sent(template)) == before + 1


def test_a_breach_is_sent_at_once_after_hours(desk: AppDesk) -> None:
    friday = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    desk.clock.now = friday
    ticket = desk.open(text="Urgency: low")  # due at 18:00 in Paris, the closing
    fire(desk, friday.replace(hour=15))  # the reminder and a re-announcement
    assert kinds(desk, ticket) == [EventKind.REMINDER, EventKind.REANNOUNCED]
    assert fire(desk, friday.replace(hour=17)) == 1  # 18:00: the breach only
    assert kinds(desk, ticket)[2:] == [EventKind.BREACH]
    assert len(desk.sent("breach.supervisor")) == 1
    assert fire(desk, SAT) == 0  # the next re-announcement waits for Monday
    assert fire(desk, MON.replace(hour=7)) == 1  # 08:00 in Paris
    assert kinds(desk, ticket)[3:] == [EventKind.REANNOUNCED]


def test_a_resolved_ticket_closes_itself_after_the_delay(desk: AppDesk) -> None:
    desk.clock.now = SAT  # auto-closure is not held for business hours
    ticket = desk.open(cc=(Person("", PAUL),))
    claim(desk, ticket, "CLAIM\nRESOLVED toner")
    week = SAT + timedelta(days=7)
    assert fire(desk, week - timedelta(seconds=1)) == 0
    assert fire(desk, week) == 1
    assert fire(desk, week + timedelta(hours=1)) == 0
    after = desk.ticket(ticket.number)
    assert (after.status, after.close_reason, after.closed_at) == (
        TicketState.CLOSED,
        CloseReason.AUTO_CLOSED,
        week,
    )
    assert after.timers == Timers()
    (notice,) = desk.sent("auto_closed.requester")
    assert notice.to == (MARIE, PAUL)
    assert notice.notice.ticket.status is TicketState.CLOSED
    (event,) = desk.events(ticket, EventKind.AUTO_CLOSED)
    assert (event.actor, event.is_internal) == (MAILD, True)


def test_a_refused_resolution_does_not_close_itself(desk: AppDesk) -> None:
    ticket = claim(desk, desk.open(), "CLAIM\nRESOLVED toner")
    desk.reply(ticket, MARIE, "REFUSE still jams")
    fire(desk, MON + timedelta(days=8))
    assert desk.ticket(ticket.number).status is TicketState.IN_PROGRESS
    assert desk.sent("auto_closed.requester") == []


def test_a_timer_that_no_longer_applies_is_cleared_and_nobody_told(
    desk: AppDesk,
) -> None:
    ticket = claim(desk, desk.open())
    with desk.store.transaction() as tx:  # left over, e.g. by an older version
        stale = replace(ticket.timers, reannounce_at=MON, auto_close_at=MON)
        tx.save_ticket(replace(ticket, timers=stale))
    sent = len(desk.sent())
    fire(desk, MON.replace(minute=5))
    after = desk.ticket(ticket.number)
    assert (after.timers.reannounce_at, after.timers.auto_close_at) == (None, None)
    assert (after.status, after.owner) == (TicketState.IN_PROGRESS, ALICE)
    assert len(desk.sent()) == sent
    assert kinds(desk, ticket) == []


class DueListLags(MemoryStore):
    """Names a ticket among the due ones that is gone, or no longer due, by the
    time it is locked: as a tick that races another instance's."""

    def due_tickets(self, timer: Timer, now: datetime, limit: int) -> list[int]:
        return [404, *self._all_with(timer), *super().due_tickets(timer, now, limit)]

    def _all_with(self, timer: Timer) -> list[int]:
        return [t.id for t in self.tickets() if t.timers.due_at(timer) is not None]


def test_a_ticket_no_longer_due_once_locked_is_left_alone() -> None:
    desk = AppDesk(store=DueListLags())
    ticket = desk.open()
    assert fire(desk, MON.replace(minute=1)) == 0
    assert desk.ticket(ticket.number) == ticket
    assert fire(desk, MON.replace(minute=30)) == 1  # the re-announcement, once


class FullBatches(MemoryStore):
    """Answers every due-ticket query with a full batch, padded with tickets
    that are gone: as a desk with more due tickets than one batch."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[Timer] = []

    def due_tickets(self, timer: Timer, now: datetime, limit: int) -> list[int]:
        self.queries.append(timer)
        due = super().due_tickets(timer, now, limit)
        return [*due, *range(10_000, 10_000 + limit - len(due))]


def test_a_full_batch_of_due_tickets_is_followed_by_another() -> None:
    store = FullBatches()
    desk = AppDesk(store=store)
    ticket = desk.open()
    assert fire(desk, MON.replace(minute=30)) == 1
    assert store.queries.count(Timer.REANNOUNCE) == 2  # until one fires nothing
    assert store.queries.count(Timer.REMINDER) == 1
    assert kinds(desk, ticket) == [EventKind.REANNOUNCED]
