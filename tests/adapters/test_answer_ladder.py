"""The per-ticket answer ladder on a real store and service, with a fake clock.

A robot that answers every mail maild sends, in words no check recognises,
gets a few answers and then nothing: the ladder holds (and records) what
would have followed. Staff are never held.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from maild.adapters.database.models import AutoAnswerRow, OutboxRow, TicketRow
from maild.adapters.database.report import show_ticket
from maild.config import load_settings
from maild.domain import MailOrigin
from maild.runtime import daemon
from tests.support.daemon import write_config
from tests.support.factories import FakeClock

PARIS = ZoneInfo("Europe/Paris")
MON = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
MARIE = "marie@example.com"
ALICE = "alice@example.com"
CHEF = "chef@example.com"
LADDER = """
[limits]
auto_answers_per_hour = 100
auto_answers_per_day = 100
ticket_answers_per_10_minutes = 3
ticket_answers_per_hour = 5
"""


class Desk:
    """The service on a SQLite file, mail handed to it directly, time faked."""

    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.config, _ = write_config(
            tmp_path, sink_port=None, language="en", extra=extra
        )
        self.clock = FakeClock(MON)
        self.parts = daemon.build(
            load_settings(self.config), self.clock, parse_workers=1
        )
        self.sent = 0

    def mail(self, sender: str, subject: str, body: str, *headers: str) -> None:
        self.sent += 1
        head = "".join(f"{h}\r\n" for h in headers)
        raw = (
            f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{self.sent}.{self.clock.now.timestamp()}@client>\r\n"
            f"{head}\r\n{body}\r\n"
        ).encode()
        self.handle(raw)

    def handle(self, raw: bytes) -> None:
        self.parts.service.handle(
            raw,
            MailOrigin(source="replay", envelope_recipients=("helpdesk@example.com",)),
        )

    def open(self) -> str:
        self.mail(MARIE, "Printer broken", "Nothing prints.")
        with self.parts.store.reading() as session:
            return (
                session.execute(select(TicketRow.number).order_by(TicketRow.id.desc()))
                .scalars()
                .first()
                or ""
            )

    def ticket(self, number: str) -> dict[str, Any]:
        shown = show_ticket(self.parts.store, number)
        assert shown is not None
        return shown

    def outbox(self) -> list[OutboxRow]:
        with self.parts.store.reading() as session:
            return list(
                session.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars()
            )

    def sent_to(self, address: str) -> list[str]:
        """Subjects of what was queued for address, in order."""
        return [
            str(
                email.message_from_bytes(r.data, policy=email.policy.default)["Subject"]
            )
            for r in self.outbox()
            if address in r.recipients.split(",")
        ]

    def held(self, number: str) -> list[str]:
        with self.parts.store.reading() as session:
            return list(
                session.execute(
                    select(AutoAnswerRow.template)
                    .join(TicketRow, TicketRow.id == AutoAnswerRow.ticket_id)
                    .where(TicketRow.number == number, AutoAnswerRow.is_held)
                ).scalars()
            )


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path, LADDER)
    yield handle
    handle.parts.close()


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
