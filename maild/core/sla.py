"""SLA step: business-time arithmetic and call-back deadlines. Pure, no I/O.

Business time is the union of one interval per business day, from
``business_start`` to ``business_end`` wall-clock time in the calendar's time
zone; weekends (days not in ``business_days``) and public holidays have none.
Arithmetic is done in UTC: Python adds and subtracts datetimes that share a
tzinfo by wall clock, which would be wrong across a DST change. No function
reads the clock: ``now`` is always an argument, and every datetime must be
timezone-aware (a naive one raises ValueError).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from maild.domain import SlaPolicy, Urgency

_MAX_GAP_DAYS = 366  # a calendar with no business day in a year is broken
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Business days and hours in a time zone, minus a country's holidays."""

    tz: ZoneInfo
    start: time
    end: time
    days: frozenset[int]
    country: str = ""
    # holidays fills in each year the first time a date of it is looked up,
    # so this per-instance object is the per-year cache (no module state).
    _holidays: holidays.HolidayBase | None = field(
        default=None, compare=False, repr=False
    )

    @classmethod
    def from_policy(cls, policy: SlaPolicy) -> BusinessCalendar:
        """Build the calendar a policy describes; ValueError if it is unusable."""
        try:
            tz = ZoneInfo(policy.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {policy.timezone!r}") from exc
        if policy.business_start >= policy.business_end:
            raise ValueError("business hours must end after they start")
        if not policy.business_days <= frozenset(range(7)):
            raise ValueError("business days are 0 (Monday) to 6 (Sunday)")
        return cls(
            tz=tz,
            start=policy.business_start,
            end=policy.business_end,
            days=policy.business_days,
            country=policy.holidays,
            _holidays=_country_holidays(policy.holidays),
        )

    def is_business_day(self, day: date) -> bool:
        """Tell whether a local date has business hours."""
        if day.weekday() not in self.days:
            return False
        return self._holidays is None or day not in self._holidays


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a ticket's call-back is due and when to remind its owner."""

    callback_due_at: datetime
    reminder_at: datetime


def _country_holidays(country: str) -> holidays.HolidayBase | None:
    if not country:
        return None
    try:
        return holidays.country_holidays(country)
    except NotImplementedError as exc:
        raise ValueError(f"no public holidays known for {country!r}") from exc


def _utc(moment: datetime) -> datetime:
    """Return an aware moment in UTC; ValueError if it is naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (need a tz)")
    return moment.astimezone(UTC)


def _opening(day: date, cal: BusinessCalendar) -> tuple[datetime, datetime] | None:
    """Return the business interval [open, close) of a local date, in UTC."""
    if not cal.is_business_day(day):
        return None
    return _wall(day, cal.start, cal), _wall(day, cal.end, cal)


def _wall(day: date, clock_time: time, cal: BusinessCalendar) -> datetime:
    """Return a local wall-clock moment in UTC (a time in a DST gap moves on)."""
    return datetime.combine(day, clock_time, tzinfo=cal.tz).astimezone(UTC)


def _openings_from(
    at: datetime, cal: BusinessCalendar
) -> Iterator[tuple[datetime, datetime]]:
    """Yield the business intervals that end after UTC `at`, in order, forever."""
    day = at.astimezone(cal.tz).date()
    gap = 0
    while True:
        interval = _opening(day, cal)
        if interval is None:
            gap += 1
            if gap > _MAX_GAP_DAYS:
                raise ValueError(f"no business day within {_MAX_GAP_DAYS} days")
        elif interval[1] > at:
            gap = 0
            yield interval
        day += timedelta(days=1)


def is_business_time(at: datetime, cal: BusinessCalendar) -> bool:
    """Tell whether a moment falls within business hours."""
    moment = _utc(at)
    interval = _opening(moment.astimezone(cal.tz).date(), cal)
    return interval is not None and interval[0] <= moment < interval[1]


def next_business_moment(at: datetime, cal: BusinessCalendar) -> datetime:
    """Return `at` if it is business time, else the next opening (in cal's tz)."""
    moment = _utc(at)
    opening, _ = next(_openings_from(moment, cal))
    return max(moment, opening).astimezone(cal.tz)


def add_business_time(
    start: datetime, delay: timedelta, cal: BusinessCalendar
) -> datetime:
    """Return the moment `delay` of business time after `start` (in cal's tz)."""
    if delay < _ZERO:
        raise ValueError("a business delay cannot be negative")
    moment = _utc(start)
    remaining = delay
    for opening, closing in _openings_from(moment, cal):
        cursor = max(moment, opening)
        if remaining <= closing - cursor:
            return (cursor + remaining).astimezone(cal.tz)
        remaining -= closing - cursor
    raise AssertionError("unreachable: _openings_from never ends")  # pragma: no cover


def business_time_between(
    start: datetime, end: datetime, cal: BusinessCalendar
) -> timedelta:
    """Return the business time in [start, end); zero if end is not after start."""
    first, last = _utc(start), _utc(end)
    total = _ZERO
    day = first.astimezone(cal.tz).date()
    while day <= last.astimezone(cal.tz).date():
        interval = _opening(day, cal)
        if interval is not None:
            total += max(min(last, interval[1]) - max(first, interval[0]), _ZERO)
        day += timedelta(days=1)
    return total


def deadlines(
    created_at: datetime, urgency: Urgency, policy: SlaPolicy, cal: BusinessCalendar
) -> Deadlines:
    """Compute the call-back deadline of a ticket and when to remind its owner."""
    try:
        delay = policy.callback[urgency]
    except KeyError:
        raise ValueError(f"no call-back delay for urgency {urgency}") from None
    if not 0.0 <= policy.reminder_at <= 1.0:
        raise ValueError("reminder_at must be between 0 and 1")
    return Deadlines(
        callback_due_at=add_business_time(created_at, delay, cal),
        reminder_at=add_business_time(created_at, delay * policy.reminder_at, cal),
    )


def next_business_day_at(
    after: datetime, clock_time: time, cal: BusinessCalendar
) -> datetime:
    """Return `clock_time` on the first business day where it is after `after`."""
    moment = _utc(after)
    day = moment.astimezone(cal.tz).date()
    for _ in range(_MAX_GAP_DAYS + 2):
        candidate = _wall(day, clock_time, cal)
        if cal.is_business_day(day) and candidate > moment:
            return candidate.astimezone(cal.tz)
        day += timedelta(days=1)
    raise ValueError(f"no business day within {_MAX_GAP_DAYS} days")


def callback_status(
    due_at: datetime, first_call_at: datetime | None, now: datetime
) -> bool | None:
    """Tell whether the call-back was in time: None while it still may be."""
    due = _utc(due_at)
    if first_call_at is not None:
        return _utc(first_call_at) <= due
    return False if _utc(now) > due else None
