"""AnswerCommandMail: HELP for the sender's role; LIST of the tickets they may see."""

from __future__ import annotations

from datetime import timedelta

import pytest

from maild.domain import Person, Role, Ticket
from tests.unit.app.conftest import ALICE, BOB, CHEF, MARIE, MON, AppDesk

PAUL = "paul@example.com"
NADIA = "nadia@example.com"  # a supervisor added with the command line


@pytest.mark.parametrize(
    ("sender", "subject", "reader"),
    [
        (MARIE, "HELP", Role.REQUESTER),
        (MARIE, " aide ", Role.REQUESTER),
        (ALICE, "Help", Role.TECHNICIAN),
        (CHEF, "AIDE", Role.SUPERVISOR),
        (NADIA, "HELP", Role.SUPERVISOR),
    ],
)
def test_help_answers_with_the_senders_role(
    desk: AppDesk, sender: str, subject: str, reader: Role
) -> None:
    desk.store.add_staff(NADIA, Role.SUPERVISOR)
    desk.send(sender=Person("", sender), subject=subject, message_id="h@x.example.com")
    (answer,) = desk.sent()
    assert (answer.template, answer.to, answer.notice.reader) == (
        "help.sender",
        (sender,),
        reader,
    )
    assert answer.mail.in_reply_to == "h@x.example.com"
    assert answer.notification.is_capped
    assert desk.store.tickets() == ()


def tickets_for_list(desk: AppDesk) -> dict[str, Ticket]:
    """Marie's (high, then low), Paul's for Marie, Paul's own; one of each
    claimed by Alice, Bob and nobody; one closed."""
    marie, paul = Person("", MARIE), Person("", PAUL)
    low = desk.open(sender=marie, subject="Low", text="Urgency: low\n\nx")
    high = desk.open(sender=marie, subject="High", text="Urgency: high\n\nx")
    for_marie = desk.open(
        sender=paul, subject="For Marie", text=f"Beneficiary: {MARIE}"
    )
    pauls = desk.open(sender=paul, subject="Paul's")
    done = desk.open(sender=marie, subject="Done")
    desk.reply(low, ALICE, "CLAIM")
    desk.reply(pauls, BOB, "CLAIM")
    desk.reply(done, MARIE, "CANCEL")
    return {"low": low, "high": high, "for_marie": for_marie, "pauls": pauls}


@pytest.mark.parametrize(
    ("sender", "reader", "listed"),
    [
        (MARIE, Role.REQUESTER, ["high", "for_marie", "low"]),
        (PAUL, Role.REQUESTER, ["for_marie", "pauls"]),
        (ALICE, Role.TECHNICIAN, ["high", "for_marie", "low"]),  # hers and the pool
        (BOB, Role.TECHNICIAN, ["high", "for_marie", "pauls"]),
        (CHEF, Role.SUPERVISOR, ["high", "for_marie", "pauls", "low"]),
    ],
)
def test_list_shows_the_open_tickets_a_sender_may_see_most_urgent_first(
    desk: AppDesk, sender: str, reader: Role, listed: list[str]
) -> None:
    tickets = tickets_for_list(desk)
    desk.clock.now = MON + timedelta(minutes=61)  # Marie had her 5 answers
    desk.send(sender=Person("", sender), subject="LISTE")
    (answer,) = desk.sent("list.sender")
    assert (answer.to, answer.notice.reader) == ((sender,), reader)
    assert [v.number for v in answer.notice.tickets] == [
        tickets[name].number for name in listed
    ]
    assert desk.store.mail_records()[-1].reason == "list answered"


def test_list_shows_who_watches_a_ticket(desk: AppDesk) -> None:
    desk.open(cc=(Person("Paul", PAUL),))
    desk.send(subject="LIST")
    ((view,),) = [s.notice.tickets for s in desk.sent("list.sender")]
    assert view.watchers == (Person("Paul", PAUL),)


def test_list_with_nothing_open_is_an_empty_list(desk: AppDesk) -> None:
    desk.send(subject="LIST")
    (answer,) = desk.sent("list.sender")
    assert answer.notice.tickets == ()
