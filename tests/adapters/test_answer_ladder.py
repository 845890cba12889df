"""The per-ticket answer ladder on a real store and service, with a fake clock.

A robot that answers every mail maild sends, in words no check recognises,
gets a few answers and then nothing: the ladder holds (and records) what
would have followed. Staff are never held.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.desk import MARIE, Desk

ALICE = "alice@example.com"
CHEF = "chef@example.com"
LADDER = """
[limits]
auto_answers_per_hour = 100
auto_answers_per_day = 100
ticket_answers_per_10_minutes = 3
ticket_answers_per_hour = 5
"""


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path, LADDER)
    yield handle
    handle.close()


def robot_reply(desk: Desk, number: str) -> None:
    """An auto-responder that none of the checks recognises."""
    desk.mail(MARIE, f"Re: [HD {number}] Printer broken", "Thank you, noted.")


def test_the_ladder_stops_a_loop_on_one_ticket(desk: Desk) -> None:
    number = desk.open()  # the confirmation is answer 1 on the ladder
    desk.mail(CHEF, f"Re: [HD {number}]", "CANCEL duplicate")  # now closed
    before = len(desk.sent_to(MARIE))
    for _ in range(6):
        robot_reply(desk, number)  # each would get a "ticket is closed" notice
    notices = desk.sent_to(MARIE)[before:]
    assert len(notices) == 2  # answers 2 and 3; the rest is held
    assert desk.held(number) == ["closed_ticket"] * 4
    comments = [e for e in desk.ticket(number)["events"] if e["kind"] == "comment"]
    assert len(comments) == 6  # every mail is still recorded on the ticket

    # Ten minutes later the next step of the ladder opens, up to the hour's 5.
    desk.clock.now += timedelta(minutes=11)
    for _ in range(4):
        robot_reply(desk, number)
    assert len(desk.sent_to(MARIE)[before:]) == 2 + 2
    assert len(desk.held(number)) == 4 + 2


def test_staff_and_other_tickets_are_never_held(desk: Desk) -> None:
    number = desk.open()
    for _ in range(4):
        desk.mail(MARIE, f"Re: [HD {number}]", "RATE 5")  # refused: not resolved
    assert desk.held(number) == ["transcript"] * 2  # 1 confirmation + 2 answered
    transcripts_before = len(desk.sent_to(ALICE))
    desk.mail(ALICE, f"Re: [HD {number}]", "CLAIM")
    assert len(desk.sent_to(ALICE)) == transcripts_before + 1  # staff: not held
    pool = [r for r in desk.outbox() if "techniciens@example.com" in r.recipients]
    assert pool  # the pool's announcement was never capped
    other = desk.open()
    assert other in desk.sent_to(MARIE)[-1]  # its confirmation went out
    assert desk.held(other) == []  # another ticket has its own ladder
