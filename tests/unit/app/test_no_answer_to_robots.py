"""A sender that asks for no automatic answer, or a robot's address, gets none."""

from __future__ import annotations

from maild.domain import AutoSignals, Person
from tests.unit.app.conftest import POOL, AppDesk

SUPPRESSED = AutoSignals(is_answer_suppressed=True)  # X-Auto-Response-Suppress: All


def test_a_suppressed_sender_gets_no_confirmation_but_the_pool_is_told(
    desk: AppDesk,
) -> None:
    ticket = desk.open(subject="Printer jammed", text="Paper jam.", auto=SUPPRESSED)
    assert desk.templates() == ["announcement.pool"]
    (announcement,) = desk.sent("announcement.pool")
    assert announcement.to == (POOL,)
    assert announcement.mail.ticket_number == ticket.number


def test_a_no_reply_sender_opens_a_ticket_and_gets_no_answer(desk: AppDesk) -> None:
    alert = Person("Monitoring", "no-reply+alerts@example.com")
    desk.open(sender=alert, subject="CRITICAL: disk full", text="/var 97%")
    desk.send(sender=alert, subject="HELP", text="")
    assert desk.templates() == ["announcement.pool"]
