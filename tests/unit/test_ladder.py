"""Pure decisions under every notification: the ticket's ladder, who may be mailed."""

from __future__ import annotations

import pytest

from maild.core.notify import is_over_ladder, may_receive


@pytest.mark.parametrize(
    ("last_10_minutes", "last_hour", "expected"),
    [
        (0, 0, False),
        (9, 24, False),
        (10, 10, True),  # the 10-minute step is full
        (3, 25, True),  # the hour is full
        (11, 30, True),
    ],
)
def test_ladder(last_10_minutes: int, last_hour: int, expected: bool) -> None:
    assert is_over_ladder(last_10_minutes, last_hour, 10, 25) is expected


STAFF = frozenset({"techniciens@example.com", "outsourced@partner.net"})


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("marie@example.com", True),
        ("Marie@EXAMPLE.com", True),
        ("paul@it.corp.example.org", True),
        ("outsourced@partner.net", True),  # staff outside the domains
        ("Outsourced@Partner.net", True),
        ("verify@accounts.thirdparty.example", False),  # the Ticket Trick
        ("attacker@example.com.evil.net", False),
        ("", False),
    ],
)
def test_only_accepted_domains_and_staff_are_mailed(
    address: str, expected: bool
) -> None:
    accepted = ("example.com", "*.corp.example.org")
    assert may_receive(address, accepted, STAFF) is expected
