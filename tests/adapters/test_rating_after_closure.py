"""RATE on a closed ticket (issue 13): within the period after closure, auto-close
included, on a real store and service with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.desk import MARIE, Desk

ALICE = "alice@example.com"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path)
    yield handle
    handle.close()


def resolved(desk: Desk) -> str:
    number = desk.open()
    desk.mail(ALICE, f"Re: [HD {number}]", "CLAIM\nRESOLVED paper jam cleared")
    assert desk.ticket(number)["status"] == "resolved"
    return number


def test_rate_after_auto_close_is_applied(desk: Desk) -> None:
    number = resolved(desk)
    desk.at(desk.clock.now + timedelta(days=10))  # past sla.auto_close_after (7 d)
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "auto_closed")

    desk.mail(MARIE, f"Re: [HD {number}]", "RATE 4 good job")
    assert desk.ticket(number)["rating"] == {"score": 4, "comment": "good job"}
    assert "Ticket closed" not in desk.sent_to(MARIE)[-1]


def test_rate_after_the_period_is_kept_not_applied(desk: Desk) -> None:
    number = resolved(desk)
    desk.mail(MARIE, f"Re: [HD {number}]", "ACCEPT")
    desk.clock.now += timedelta(days=31)  # past retention.rate_days_after_close
    desk.mail(MARIE, f"Re: [HD {number}]", "RATE 2 too late")
    ticket = desk.ticket(number)
    assert ticket["rating"] is None
    assert ticket["events"][-2]["kind"] == "comment"  # kept for staff
    assert "Ticket closed" in desk.sent_to(MARIE)[-1]


def test_rate_on_a_cancelled_ticket_is_refused(desk: Desk) -> None:
    number = desk.open()
    desk.mail(MARIE, f"Re: [HD {number}]", "CANCEL")
    desk.mail(MARIE, f"Re: [HD {number}]", "RATE 5")
    assert desk.ticket(number)["rating"] is None
    kinds = [e["kind"] for e in desk.ticket(number)["events"]]
    assert "command_refused" in kinds
