"""SLA timers of a ticket: when the next reminder, breach alert, re-announcement,
PDR retry and automatic closure are due, after each event. Pure.

The timers are stored on the ticket (the database is the single truth); the
scheduler only asks which are due at `now`. A timer is cleared in the same
transaction as the notice it sends, so a restart neither loses nor repeats one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import assert_never

from maild.core.sla import (
    BusinessCalendar,
    add_business_time,
    deadlines,
    is_business_time,
)
from maild.domain import EventKind, SlaPolicy, Timer, Timers, Urgency

# Reminders and re-announcements wait for business hours; the others do not.
BUSINESS_HOURS_ONLY = frozenset({Timer.REMINDER, Timer.REANNOUNCE, Timer.PDR_RETRY})


def timers_for_new(
    created_at: datetime, urgency: Urgency, policy: SlaPolicy, cal: BusinessCalendar
) -> Timers:
    """The timers of a ticket just opened, in the pool."""
    due = deadlines(created_at, urgency, policy, cal)
    return Timers(
        reminder_at=due.reminder_at,
        breach_at=due.callback_due_at,
        reannounce_at=add_business_time(created_at, policy.reannounce_every, cal),
    )


def timers_after(
    event: EventKind,
    timers: Timers,
    now: datetime,
    policy: SlaPolicy,
    cal: BusinessCalendar,
) -> Timers:
    """The timers as an event on the ticket leaves them."""
    match event:
        case EventKind.CLAIMED | EventKind.ASSIGNED:
            return replace(timers, reannounce_at=None)
        case EventKind.RELEASED:
            return replace(
                timers,
                reannounce_at=add_business_time(now, policy.reannounce_every, cal),
            )
        case EventKind.CALL:
            return replace(timers, reminder_at=None, breach_at=None, pdr_retry_at=None)
        case EventKind.PDR:
            return replace(
                timers,
                reminder_at=None,
                breach_at=None,
                pdr_retry_at=add_business_time(now, policy.pdr_retry_after, cal),
            )
        case EventKind.RESOLVED:
            return Timers(auto_close_at=now + policy.auto_close_after)
        case EventKind.REFUSED:
            return replace(timers, auto_close_at=None)
        case EventKind.ACCEPTED | EventKind.CANCELLED | EventKind.AUTO_CLOSED:
            return Timers()
        case _:
            return timers


def timers_after_firing(
    timer: Timer,
    timers: Timers,
    now: datetime,
    policy: SlaPolicy,
    cal: BusinessCalendar,
) -> Timers:
    """The timers once one has fired: cleared, or the next re-announcement."""
    match timer:
        case Timer.REMINDER:
            return replace(timers, reminder_at=None)
        case Timer.BREACH:
            return replace(timers, breach_at=None, reminder_at=None)
        case Timer.REANNOUNCE:
            return replace(
                timers,
                reannounce_at=add_business_time(now, policy.reannounce_every, cal),
            )
        case Timer.PDR_RETRY:
            return replace(timers, pdr_retry_at=None)
        case Timer.AUTO_CLOSE:
            return Timers()
        case _:
            assert_never(timer)


def may_fire(timer: Timer, now: datetime, cal: BusinessCalendar) -> bool:
    """Tell whether a due timer may send its notice now (business hours rule)."""
    return timer not in BUSINESS_HOURS_ONLY or is_business_time(now, cal)
