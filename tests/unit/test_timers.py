"""SLA timers after each event, after firing, and the business-hours rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from maild.core.sla import BusinessCalendar
from maild.core.timers import (
    Timer,
    Timers,
    may_fire,
    timers_after,
    timers_after_firing,
    timers_for_new,
)
from maild.domain import EventKind, SlaPolicy, Urgency

PARIS = ZoneInfo("Europe/Paris")
POLICY = SlaPolicy(
    callback={
        Urgency.HIGH: timedelta(hours=1),
        Urgency.MEDIUM: timedelta(hours=4),
        Urgency.LOW: timedelta(hours=8),
    }
)
CAL = BusinessCalendar.from_policy(POLICY)
MON_9 = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
T = datetime(2026, 11, 30, 10, 0, tzinfo=PARIS)
FULL = Timers(MON_9, MON_9, MON_9, MON_9, MON_9)


def test_new_ticket_timers() -> None:
    timers = timers_for_new(MON_9, Urgency.MEDIUM, POLICY, CAL)
    assert timers.breach_at == MON_9.replace(hour=13)
    assert timers.reminder_at == MON_9.replace(hour=12)
    assert timers.reannounce_at == MON_9.replace(minute=30)
    assert (timers.pdr_retry_at, timers.auto_close_at) == (None, None)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (EventKind.CLAIMED, Timers(MON_9, MON_9, None, MON_9, MON_9)),
        (EventKind.ASSIGNED, Timers(MON_9, MON_9, None, MON_9, MON_9)),
        (
            EventKind.RELEASED,
            Timers(MON_9, MON_9, T + timedelta(minutes=30), MON_9, MON_9),
        ),
        (EventKind.CALL, Timers(None, None, MON_9, None, MON_9)),
        (EventKind.PDR, Timers(None, None, MON_9, T + timedelta(hours=2), MON_9)),
        (EventKind.RESOLVED, Timers(auto_close_at=T + timedelta(days=7))),
        (EventKind.REFUSED, Timers(MON_9, MON_9, MON_9, MON_9, None)),
        (EventKind.ACCEPTED, Timers()),
        (EventKind.CANCELLED, Timers()),
        (EventKind.AUTO_CLOSED, Timers()),
        (EventKind.TASK, FULL),
        (EventKind.NOTE, FULL),
        (EventKind.RATED, FULL),
    ],
)
def test_timers_after_event(event: EventKind, expected: Timers) -> None:
    assert timers_after(event, FULL, T, POLICY, CAL) == expected


@pytest.mark.parametrize(
    ("timer", "expected"),
    [
        (Timer.REMINDER, Timers(None, MON_9, MON_9, MON_9, MON_9)),
        (Timer.BREACH, Timers(None, None, MON_9, MON_9, MON_9)),
        (
            Timer.REANNOUNCE,
            Timers(MON_9, MON_9, T + timedelta(minutes=30), MON_9, MON_9),
        ),
        (Timer.PDR_RETRY, Timers(MON_9, MON_9, MON_9, None, MON_9)),
        (Timer.AUTO_CLOSE, Timers()),
    ],
)
def test_timers_after_firing(timer: Timer, expected: Timers) -> None:
    assert timers_after_firing(timer, FULL, T, POLICY, CAL) == expected
    assert FULL.due_at(timer) == MON_9


@pytest.mark.parametrize(
    ("timer", "at", "expected"),
    [
        (Timer.REMINDER, T, True),
        (Timer.REMINDER, T.replace(hour=19), False),
        (Timer.REANNOUNCE, T.replace(hour=7), False),
        (Timer.PDR_RETRY, datetime(2026, 12, 5, 10, tzinfo=PARIS), False),
        (Timer.BREACH, T.replace(hour=19), True),
        (Timer.AUTO_CLOSE, datetime(2026, 12, 5, 10, tzinfo=PARIS), True),
    ],
)
def test_business_hours_rule(timer: Timer, at: datetime, expected: bool) -> None:
    assert may_fire(timer, at, CAL) is expected
