"""Who is told what when a ticket opens; the answer caps."""

from __future__ import annotations

import pytest

from maild.core.notify import Caps, TicketOpened, is_over_cap, notifications_for
from maild.domain import Audience, Person
from tests.support.factories import make_view


def test_ticket_opened_confirms_to_people_and_announces_to_pool() -> None:
    ticket = make_view(
        beneficiary=Person("Paul", "paul@example.com"),
        watchers=(Person("", "chef@example.com"), Person("", "paul@example.com")))
    confirmation, announcement = notifications_for(
        TicketOpened(ticket, "", "m1@client"), "pool@example.com")
    assert confirmation.template == "confirmation"
    assert confirmation.audience is Audience.REQUESTER
    assert confirmation.to == ("marie@example.com", "paul@example.com",
                               "chef@example.com")
    assert confirmation.is_capped
    assert confirmation.in_reply_to == "m1@client"
    assert announcement.to == ("pool@example.com",)
    assert announcement.audience is Audience.POOL
    assert not announcement.is_capped


def test_requester_who_is_beneficiary_gets_one_copy() -> None:
    confirmation, _ = notifications_for(TicketOpened(make_view(), "", ""), "p@x")
    assert confirmation.to == ("marie@example.com",)


@pytest.mark.parametrize(
    ("hour", "day", "expected"),
    [(0, 0, False), (4, 19, False), (5, 5, True), (0, 20, True), (4, 20, True)],
)
def test_caps(hour: int, day: int, expected: bool) -> None:
    assert is_over_cap(hour, day, Caps(per_hour=5, per_day=20)) is expected
