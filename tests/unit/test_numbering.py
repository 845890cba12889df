"""Ticket numbers and subject tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maild.core.numbering import (
    counter_name,
    number_in_subject,
    subject_tag,
    ticket_day,
)
from maild.domain import TicketNumber, TicketType


def test_number_format() -> None:
    assert str(TicketNumber(TicketType.INCIDENT, "261129", 7)) == "I261129_0007"
    assert str(TicketNumber(TicketType.REQUEST, "261129", 12345)) == "S261129_12345"


@pytest.mark.parametrize(
    ("moment", "zone", "day"),
    [
        (datetime(2026, 11, 29, 22, 30, tzinfo=UTC), "Europe/Paris", "261129"),
        # 23:30 UTC is already the next day in Paris
        (datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "Europe/Paris", "261130"),
        (datetime(2026, 11, 30, 3, 0, tzinfo=UTC), "America/New_York", "261129"),
    ],
)
def test_day_is_taken_in_the_calendar_zone(
    moment: datetime, zone: str, day: str
) -> None:
    assert ticket_day(moment, zone) == day


def test_counter_per_type_and_day() -> None:
    assert counter_name(TicketType.INCIDENT, "261129") == "I261129"
    assert counter_name(TicketType.REQUEST, "261129") == "S261129"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[HD I261129_0007] Imprimante", "I261129_0007"),
        ("RE: TR: [hd   s261129_0012 ] VPN", "S261129_0012"),
        ("[HDX I261129_0007]", None),
        ("[XHD I261129_0007]", None),
        ("[HD I2611_0007]", None),
        ("HD I261129_0007", None),
    ],
)
def test_number_in_subject(subject: str, expected: str | None) -> None:
    assert number_in_subject(subject, "HD") == expected


def test_subject_tag_round_trips() -> None:
    assert (
        number_in_subject(subject_tag("IT-Paris", "I261129_0001") + " x", "IT-Paris")
        == "I261129_0001"
    )
