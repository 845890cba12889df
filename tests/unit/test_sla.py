"""Unit tests of core/sla.py: business-time arithmetic and call-back deadlines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.core.sla import (
    BusinessCalendar,
    Deadlines,
    add_business_time,
    business_time_between,
    callback_status,
    deadlines,
    is_business_time,
    next_business_day_at,
    next_business_moment,
)
from maild.domain import SlaPolicy, Urgency

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
M = timedelta(minutes=1)

CALLBACK = {Urgency.HIGH: 1 * H, Urgency.MEDIUM: 4 * H, Urgency.LOW: 8 * H}
FR_POLICY = SlaPolicy(callback=CALLBACK)
FR = BusinessCalendar.from_policy(FR_POLICY)
FR_NO_HOLIDAYS = BusinessCalendar.from_policy(SlaPolicy(callback=CALLBACK, holidays=""))
FR_MON_SAT_9_17 = BusinessCalendar.from_policy(
    SlaPolicy(
        callback=CALLBACK,
        business_days=frozenset(range(6)),
        business_start=time(9),
        business_end=time(17),
    )
)
US = BusinessCalendar.from_policy(
    SlaPolicy(
        callback=CALLBACK,
        timezone="America/New_York",
        holidays="US",
        business_start=time(9),
        business_end=time(17),
    )
)
NY_NO_HOLIDAYS = BusinessCalendar.from_policy(
    SlaPolicy(
        callback=CALLBACK,
        timezone="America/New_York",
        holidays="",
        business_start=time(9),
        business_end=time(17),
    )
)
# Almost the whole day, every day: the DST change falls inside business hours.
PARIS_ALL_DAY = BusinessCalendar.from_policy(
    SlaPolicy(
        callback=CALLBACK,
        business_days=frozenset(range(7)),
        business_start=time(0),
        business_end=time(23, 59),
        holidays="",
    )
)
CALENDARS = [FR, FR_NO_HOLIDAYS, FR_MON_SAT_9_17, US, NY_NO_HOLIDAYS, PARIS_ALL_DAY]


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=PARIS)


def new_york(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NEW_YORK)


ADD_CASES = [
    # id, calendar, start, delay, expected
    (
        "friday-late",
        FR,
        paris(2026, 11, 27, 17, 30),
        4 * H,
        paris(2026, 11, 30, 11, 30),
    ),
    ("dst-spring", FR, paris(2026, 3, 27, 17), 4 * H, paris(2026, 3, 30, 11)),
    ("dst-autumn", FR, paris(2026, 10, 23, 17), 4 * H, paris(2026, 10, 26, 11)),
    ("christmas", FR, paris(2026, 12, 24, 17), 4 * H, paris(2026, 12, 28, 11)),
    ("may-1-friday", FR, paris(2026, 4, 30, 17), 4 * H, paris(2026, 5, 4, 11)),
    ("may-8-friday", FR, paris(2026, 5, 7, 17), 4 * H, paris(2026, 5, 11, 11)),
    ("ascension", FR, paris(2026, 5, 13, 17), 4 * H, paris(2026, 5, 15, 11)),
    ("easter-monday", FR, paris(2026, 4, 3, 17), 4 * H, paris(2026, 4, 7, 11)),
    ("14-july", FR, paris(2026, 7, 13, 17), 4 * H, paris(2026, 7, 15, 11)),
    ("15-aug-saturday", FR, paris(2026, 8, 14, 17), 4 * H, paris(2026, 8, 17, 11)),
    ("zero-in-hours", FR, paris(2026, 11, 25, 10), 0 * H, paris(2026, 11, 25, 10)),
    ("zero-saturday", FR, paris(2026, 11, 28, 10), 0 * H, paris(2026, 11, 30, 8)),
    ("before-opening", FR, paris(2026, 11, 25, 6), 1 * H, paris(2026, 11, 25, 9)),
    ("after-closing", FR, paris(2026, 11, 25, 19), 1 * H, paris(2026, 11, 26, 9)),
    ("at-closing", FR, paris(2026, 11, 27, 18), 4 * H, paris(2026, 11, 30, 12)),
    ("at-opening", FR, paris(2026, 11, 25, 8), 4 * H, paris(2026, 11, 25, 12)),
    ("saturday", FR, paris(2026, 11, 28, 12), 8 * H, paris(2026, 11, 30, 16)),
    ("sunday-night", FR, paris(2026, 11, 29, 23), 1 * H, paris(2026, 11, 30, 9)),
    ("fills-to-close", FR, paris(2026, 11, 25, 10), 8 * H, paris(2026, 11, 25, 18)),
    ("over-a-day", FR, paris(2026, 11, 25, 14), 12 * H, paris(2026, 11, 26, 16)),
    ("whole-week", FR, paris(2026, 11, 23, 8), 50 * H, paris(2026, 11, 27, 18)),
    ("long-holidays", FR, paris(2026, 12, 23, 9), 30 * H, paris(2026, 12, 29, 9)),
    ("minutes", FR, paris(2026, 11, 25, 17, 59), 2 * M, paris(2026, 11, 26, 8, 1)),
    (
        "christmas-no-hol",
        FR_NO_HOLIDAYS,
        paris(2026, 12, 24, 17),
        4 * H,
        paris(2026, 12, 25, 11),
    ),
    (
        "mon-sat",
        FR_MON_SAT_9_17,
        paris(2026, 11, 27, 16, 30),
        4 * H,
        paris(2026, 11, 28, 12, 30),
    ),
    (
        "mon-sat-sunday",
        FR_MON_SAT_9_17,
        paris(2026, 11, 28, 16),
        2 * H,
        paris(2026, 11, 30, 10),
    ),
    (
        "us-july-3-observed",
        US,
        new_york(2026, 7, 2, 16),
        4 * H,
        new_york(2026, 7, 6, 12),
    ),
    (
        "us-no-holidays",
        NY_NO_HOLIDAYS,
        new_york(2026, 7, 2, 16),
        4 * H,
        new_york(2026, 7, 3, 12),
    ),
    (
        "us-thanksgiving",
        US,
        new_york(2026, 11, 25, 16),
        4 * H,
        new_york(2026, 11, 27, 12),
    ),
    ("us-dst-spring", US, new_york(2026, 3, 6, 16), 4 * H, new_york(2026, 3, 9, 12)),
    ("us-dst-autumn", US, new_york(2026, 10, 30, 16), 4 * H, new_york(2026, 11, 2, 12)),
    (
        "dst-inside-hours",
        PARIS_ALL_DAY,
        paris(2026, 3, 29, 0),
        3 * H,
        paris(2026, 3, 29, 4),
    ),
    # 00:00 CEST + 3 h is the second 02:00 of the night, in CET (fold=1)
    (
        "dst-back-inside",
        PARIS_ALL_DAY,
        paris(2026, 10, 25, 0),
        3 * H,
        datetime(2026, 10, 25, 2, fold=1, tzinfo=PARIS),
    ),
    (
        "utc-start",
        FR,
        datetime(2026, 11, 27, 16, 30, tzinfo=UTC),
        4 * H,
        paris(2026, 11, 30, 11, 30),
    ),
]


@pytest.mark.parametrize(
    ("cal", "start", "delay", "expected"),
    [case[1:] for case in ADD_CASES],
    ids=[case[0] for case in ADD_CASES],
)
def test_add_business_time(
    cal: BusinessCalendar, start: datetime, delay: timedelta, expected: datetime
) -> None:
    due = add_business_time(start, delay, cal)
    assert due == expected
    assert due.tzinfo is cal.tz
    assert due.utcoffset() == expected.utcoffset()


def test_dst_results_carry_the_right_offset() -> None:
    spring = add_business_time(paris(2026, 3, 27, 17), 4 * H, FR)
    autumn = add_business_time(paris(2026, 10, 23, 17), 4 * H, FR)
    assert spring.astimezone(UTC) == datetime(2026, 3, 30, 9, tzinfo=UTC)  # CEST
    assert autumn.astimezone(UTC) == datetime(2026, 10, 26, 10, tzinfo=UTC)  # CET
    # the 2 am fold of 25 October happens once; the hour 02:00-03:00 counts twice
    autumn_day = add_business_time(paris(2026, 10, 25, 0), 3 * H, PARIS_ALL_DAY)
    assert autumn_day.astimezone(UTC) == datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert autumn_day.fold == 1


@pytest.mark.parametrize(
    ("cal", "start", "end", "expected"),
    [
        (FR, paris(2026, 11, 27, 17, 30), paris(2026, 11, 30, 11, 30), 4 * H),
        (FR, paris(2026, 11, 25, 10), paris(2026, 11, 25, 10), 0 * H),
        (FR, paris(2026, 11, 25, 12), paris(2026, 11, 25, 10), 0 * H),
        (FR, paris(2026, 11, 28, 0), paris(2026, 11, 29, 23), 0 * H),
        (FR, paris(2026, 11, 23, 0), paris(2026, 11, 30, 0), 50 * H),
        (FR, paris(2026, 12, 21, 0), paris(2026, 12, 28, 0), 40 * H),
        (FR_NO_HOLIDAYS, paris(2026, 12, 21, 0), paris(2026, 12, 28, 0), 50 * H),
        (FR, paris(2026, 11, 25, 6), paris(2026, 11, 25, 20), 10 * H),
        (PARIS_ALL_DAY, paris(2026, 3, 29, 0), paris(2026, 3, 30, 0), 22 * H + 59 * M),
        (
            PARIS_ALL_DAY,
            paris(2026, 10, 25, 0),
            paris(2026, 10, 26, 0),
            24 * H + 59 * M,
        ),
        (US, new_york(2026, 7, 2, 16), new_york(2026, 7, 6, 12), 4 * H),
    ],
    ids=[
        "friday-to-monday",
        "empty",
        "reversed",
        "weekend",
        "whole-week",
        "christmas-week",
        "christmas-week-no-holidays",
        "whole-day",
        "spring-forward-day",
        "fall-back-day",
        "us-observed",
    ],
)
def test_business_time_between(
    cal: BusinessCalendar, start: datetime, end: datetime, expected: timedelta
) -> None:
    assert business_time_between(start, end, cal) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (paris(2026, 11, 25, 8), True),
        (paris(2026, 11, 25, 17, 59, 59), True),
        (paris(2026, 11, 25, 18), False),
        (paris(2026, 11, 25, 7, 59), False),
        (paris(2026, 11, 28, 10), False),  # Saturday
        (paris(2026, 12, 25, 10), False),  # Christmas
        (paris(2026, 4, 6, 10), False),  # Easter Monday
        (datetime(2026, 11, 25, 7, 30, tzinfo=UTC), True),  # 08:30 in Paris
        (datetime(2026, 11, 25, 6, 30, tzinfo=UTC), False),  # 07:30 in Paris
        (datetime(2026, 6, 10, 6, 30, tzinfo=UTC), True),  # 08:30 CEST
    ],
)
def test_is_business_time(at: datetime, expected: bool) -> None:
    assert is_business_time(at, FR) is expected


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        (FR, paris(2026, 11, 25, 10), paris(2026, 11, 25, 10)),
        (FR, paris(2026, 11, 25, 7), paris(2026, 11, 25, 8)),
        (FR, paris(2026, 11, 25, 18), paris(2026, 11, 26, 8)),
        (FR, paris(2026, 11, 27, 19), paris(2026, 11, 30, 8)),
        (FR, paris(2026, 12, 24, 18, 30), paris(2026, 12, 28, 8)),
        (FR, paris(2026, 4, 3, 18, 30), paris(2026, 4, 7, 8)),
        (FR_MON_SAT_9_17, paris(2026, 11, 27, 19), paris(2026, 11, 28, 9)),
        (US, new_york(2026, 7, 2, 18), new_york(2026, 7, 6, 9)),
        (FR, datetime(2026, 11, 25, 9, tzinfo=UTC), paris(2026, 11, 25, 10)),
    ],
)
def test_next_business_moment(
    cal: BusinessCalendar, at: datetime, expected: datetime
) -> None:
    moment = next_business_moment(at, cal)
    assert moment == expected
    assert moment.tzinfo is cal.tz


@pytest.mark.parametrize(
    ("urgency", "due", "reminder"),
    [
        (Urgency.HIGH, paris(2026, 11, 30, 8, 30), paris(2026, 11, 30, 8, 15)),
        (Urgency.MEDIUM, paris(2026, 11, 30, 11, 30), paris(2026, 11, 30, 10, 30)),
        (Urgency.LOW, paris(2026, 11, 30, 15, 30), paris(2026, 11, 30, 13, 30)),
    ],
)
def test_deadlines(urgency: Urgency, due: datetime, reminder: datetime) -> None:
    result = deadlines(paris(2026, 11, 27, 17, 30), urgency, FR_POLICY, FR)
    assert result == Deadlines(callback_due_at=due, reminder_at=reminder)


def test_deadline_reminder_share_is_configurable() -> None:
    policy = SlaPolicy(callback=CALLBACK, reminder_at=0.5)
    result = deadlines(paris(2026, 11, 25, 16), Urgency.MEDIUM, policy, FR)
    assert result.reminder_at == paris(2026, 11, 25, 18)
    assert result.callback_due_at == paris(2026, 11, 26, 10)


@pytest.mark.parametrize(
    ("cal", "after", "clock", "expected"),
    [
        (FR, paris(2026, 11, 25, 7), time(8, 30), paris(2026, 11, 25, 8, 30)),
        (FR, paris(2026, 11, 25, 8, 30), time(8, 30), paris(2026, 11, 26, 8, 30)),
        (FR, paris(2026, 11, 27, 9), time(8, 30), paris(2026, 11, 30, 8, 30)),
        (FR, paris(2026, 11, 28, 6), time(8, 30), paris(2026, 11, 30, 8, 30)),
        (FR, paris(2026, 12, 24, 10), time(8, 30), paris(2026, 12, 28, 8, 30)),
        (FR, paris(2026, 3, 27, 9), time(8, 30), paris(2026, 3, 30, 8, 30)),
        (FR, paris(2026, 10, 23, 9), time(8, 30), paris(2026, 10, 26, 8, 30)),
        (US, new_york(2026, 7, 2, 9), time(8), new_york(2026, 7, 6, 8)),
        (
            FR_MON_SAT_9_17,
            paris(2026, 11, 27, 9),
            time(8, 30),
            paris(2026, 11, 28, 8, 30),
        ),
    ],
)
def test_next_business_day_at(
    cal: BusinessCalendar, after: datetime, clock: time, expected: datetime
) -> None:
    moment = next_business_day_at(after, clock, cal)
    assert moment == expected
    assert moment.utcoffset() == expected.utcoffset()


DUE = paris(2026, 11, 30, 11, 30)


@pytest.mark.parametrize(
    ("first_call", "now", "expected"),
    [
        (None, DUE - M, None),
        (None, DUE, None),
        (None, DUE + M, False),
        (DUE - H, DUE + 9 * H, True),
        (DUE, DUE + H, True),
        (DUE + M, DUE + H, False),
        (DUE - M, DUE - M, True),
        (datetime(2026, 11, 30, 10, 30, tzinfo=UTC), DUE + H, True),  # = due, in UTC
    ],
)
def test_callback_status(
    first_call: datetime | None, now: datetime, expected: bool | None
) -> None:
    assert callback_status(DUE, first_call, now) is expected


NAIVE = datetime(2026, 11, 27, 17, 30)  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    "call",
    [
        lambda: is_business_time(NAIVE, FR),
        lambda: next_business_moment(NAIVE, FR),
        lambda: add_business_time(NAIVE, H, FR),
        lambda: business_time_between(NAIVE, DUE, FR),
        lambda: business_time_between(DUE, NAIVE, FR),
        lambda: deadlines(NAIVE, Urgency.HIGH, FR_POLICY, FR),
        lambda: next_business_day_at(NAIVE, time(8, 30), FR),
        lambda: callback_status(NAIVE, None, DUE),
        lambda: callback_status(DUE, NAIVE, DUE),
        lambda: callback_status(DUE, None, NAIVE),
    ],
)
def test_naive_datetime_is_rejected(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="naive"):
        call()


NO_DAYS = BusinessCalendar.from_policy(
    SlaPolicy(callback=CALLBACK, business_days=frozenset())
)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: add_business_time(DUE, -M, FR), "negative"),
        (lambda: add_business_time(DUE, H, NO_DAYS), "no business day"),
        (lambda: next_business_moment(DUE, NO_DAYS), "no business day"),
        (lambda: next_business_day_at(DUE, time(8), NO_DAYS), "no business day"),
        (
            lambda: deadlines(DUE, Urgency.LOW, SlaPolicy(callback={}), FR),
            "no call-back delay",
        ),
        (
            lambda: deadlines(DUE, Urgency.LOW, SlaPolicy(CALLBACK, reminder_at=2), FR),
            "reminder_at",
        ),
        (
            lambda: BusinessCalendar.from_policy(SlaPolicy(CALLBACK, timezone="X/Y")),
            "time zone",
        ),
        (
            lambda: BusinessCalendar.from_policy(SlaPolicy(CALLBACK, holidays="ZZ")),
            "holidays",
        ),
        (
            lambda: BusinessCalendar.from_policy(
                SlaPolicy(CALLBACK, business_start=time(18), business_end=time(8))
            ),
            "business hours",
        ),
        (
            lambda: BusinessCalendar.from_policy(
                SlaPolicy(CALLBACK, business_days=frozenset({7}))
            ),
            "business days",
        ),
    ],
)
def test_bad_input_is_rejected(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_no_business_days_still_measures_zero() -> None:
    assert business_time_between(DUE, DUE + 9000 * H, NO_DAYS) == timedelta(0)


def test_a_sparse_calendar_spans_months() -> None:
    mondays = BusinessCalendar.from_policy(
        SlaPolicy(callback=CALLBACK, business_days=frozenset({0}), holidays="")
    )
    due = add_business_time(paris(2026, 11, 25, 9), 100 * H, mondays)
    assert due == paris(2027, 2, 1, 18)  # the tenth Monday


def test_calendars_compare_by_configuration() -> None:
    assert BusinessCalendar.from_policy(FR_POLICY) == FR
    assert hash(BusinessCalendar.from_policy(FR_POLICY)) == hash(FR)
    assert FR != FR_NO_HOLIDAYS


ZONES = st.sampled_from([UTC, PARIS, NEW_YORK, ZoneInfo("Asia/Tokyo")])
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis adds the zone
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=ZONES,
)
DELAYS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=300))


@settings(deadline=None)
@given(start=MOMENTS, delay=DELAYS, cal=st.sampled_from(CALENDARS))
def test_between_inverts_add(
    start: datetime, delay: timedelta, cal: BusinessCalendar
) -> None:
    due = add_business_time(start, delay, cal)
    assert due >= start
    assert business_time_between(start, due, cal) == delay
    opening = next_business_moment(start, cal)
    assert business_time_between(opening, due, cal) == delay
    assert is_business_time(opening, cal)


@settings(deadline=None)
@given(start=MOMENTS, first=DELAYS, second=DELAYS, cal=st.sampled_from(CALENDARS))
def test_add_is_additive(
    start: datetime, first: timedelta, second: timedelta, cal: BusinessCalendar
) -> None:
    step = add_business_time(start, first, cal)
    if second == timedelta(0):  # a step that ends at closing moves to the opening
        expected = next_business_moment(step, cal)
    else:
        expected = add_business_time(start, first + second, cal)
    assert add_business_time(step, second, cal) == expected
