"""Outbound: the safety net, the answer caps and the ticket's ladder, the
Message-IDs and threading of what is queued, and bounces marking it failed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from maild.core import notices
from maild.core.bounces import BounceFacts, is_own_message_id
from maild.domain import (
    Audience,
    EventKind,
    Notification,
    OutboxState,
    Person,
    Role,
)
from tests.unit.app.conftest import ALICE, HELPDESK, MARIE, MON, POOL, AppDesk

PAUL = "paul@example.com"
PARTNER = "ext@partner.org"  # outside the domains, added as a technician


def queue(desk: AppDesk, to: tuple[str, ...], *, is_capped: bool = False) -> None:
    """Queue one help mail to these addresses, about no ticket."""
    help_notice = notices.Help(Role.REQUESTER)
    notification = Notification(
        "help", Audience.SENDER, to, help_notice, is_capped=is_capped
    )
    with desk.store.transaction() as tx:
        desk.app.outbound.queue(tx, notification, None, desk.clock.now)


@pytest.mark.parametrize(
    ("address", "is_kept"),
    [
        (MARIE, True),
        (ALICE, True),
        (POOL, True),
        (PARTNER, True),  # staff, wherever they are
        ("someone@gmail.com", False),
        ("someone@example.com.evil.org", False),
        ("victim%evil.org@example.com", False),  # routed by the relay
        ("evil.org!victim@example.com", False),
        ('"victim@evil.org"@example.com', False),
        ("not an address", False),
    ],
)
def test_the_safety_net_drops_outside_and_routed_addresses(
    desk: AppDesk, address: str, is_kept: bool
) -> None:
    desk.store.add_staff(PARTNER, Role.TECHNICIAN)
    queue(desk, (address, PAUL))
    (sent,) = desk.sent()
    assert sent.to == ((address, PAUL) if is_kept else (PAUL,))


def test_an_address_is_mailed_once_whatever_its_case(desk: AppDesk) -> None:
    queue(desk, (MARIE, "Marie@Example.COM", PAUL))
    assert desk.sent()[0].to == (MARIE, PAUL)


def test_nothing_is_rendered_or_queued_when_no_one_may_be_mailed(
    desk: AppDesk,
) -> None:
    queue(desk, ("a@gmail.com", "b%c@example.com"), is_capped=True)
    assert desk.store.outbox() == ()
    assert desk.renderer.rendered == []
    assert desk.store.answers() == ()


def test_answers_to_someone_outside_the_staff_are_capped_per_hour(
    desk: AppDesk,
) -> None:
    for _ in range(6):
        desk.send(subject="HELP")
    assert len(desk.sent("help.sender")) == 5
    answers = desk.store.answers()
    assert [a.is_held for a in answers] == [False] * 5 + [True]
    assert (answers[-1].address, answers[-1].template) == (MARIE, "help")
    desk.clock.now = MON + timedelta(hours=1, seconds=1)
    desk.send(subject="HELP")
    assert len(desk.sent("help.sender")) == 6


def test_answers_are_capped_per_day(desk: AppDesk) -> None:
    for hour in range(5):
        desk.clock.now = MON + timedelta(minutes=61 * hour)  # one hour apart
        for _ in range(5):
            desk.send(subject="HELP")
    assert len(desk.sent("help.sender")) == 20
    assert sum(a.is_held for a in desk.store.answers()) == 5
    desk.clock.now = MON + timedelta(days=1, minutes=2)
    desk.send(subject="HELP")
    assert len(desk.sent("help.sender")) == 21


def test_staff_and_the_pool_are_never_capped(desk: AppDesk) -> None:
    for _ in range(8):
        desk.send(subject="HELP", sender=Person("", ALICE))
        desk.open(sender=Person("", ALICE))
    assert len(desk.sent("help.sender")) == 8
    assert len(desk.sent("announcement.pool")) == 8
    assert desk.store.answers() == ()


def test_a_capped_address_is_dropped_from_a_mail_to_several(desk: AppDesk) -> None:
    for _ in range(5):
        desk.send(subject="HELP")
    ticket = desk.open(cc=(Person("", PAUL),))
    (confirmation,) = desk.sent("confirmation.requester")
    assert confirmation.to == (PAUL,)
    (held,) = [a for a in desk.store.answers() if a.is_held]
    assert (held.address, held.template, held.ticket_id) == (
        MARIE,
        "confirmation",
        ticket.id,
    )


LADDER = {"ticket_answers_per_10_minutes": 3, "ticket_answers_per_hour": 5}


def test_the_ladder_holds_answers_on_one_ticket(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(limits=LADDER)
    ticket = desk.open()  # the confirmation is the first answer
    for _ in range(3):
        desk.reply(ticket, MARIE, "RATE 9")
    assert len(desk.sent("transcript.sender")) == 2
    desk.clock.now = MON + timedelta(minutes=10, seconds=1)
    for _ in range(3):
        desk.reply(ticket, MARIE, "RATE 9")
    assert len(desk.sent("transcript.sender")) == 4  # five in the hour
    held = [a for a in desk.store.answers() if a.is_held]
    assert [a.ticket_id for a in held] == [ticket.id] * 2


def test_the_ladder_counts_the_ticket_not_the_address(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(limits=LADDER)
    ticket = desk.open(cc=(Person("", PAUL),))  # two answers: Marie, Paul
    desk.reply(ticket, MARIE, "RATE 9")  # the third
    desk.reply(ticket, PAUL, "RATE 9")
    assert [s.to for s in desk.sent("transcript.sender")] == [(MARIE,)]
    assert desk.sent("comment.owner") == []  # RATE 9 is refused, not a comment


OURS = re.compile(r"([0-9a-f]{24})\.[0-9a-f]{12}@example\.com")


def test_message_ids_are_ours_unique_and_bound_to_the_ticket(desk: AppDesk) -> None:
    ticket = desk.open()
    desk.reply(ticket, ALICE, "CLAIM")
    desk.send(subject="HELP")
    ids = [s.mail.message_id for s in desk.sent()]
    assert len(set(ids)) == len(ids)
    tokens = [m.group(1) for i in ids if (m := OURS.fullmatch(i))]
    assert len(tokens) == len(ids)
    assert all(is_own_message_id(i, "example.com") for i in ids)
    assert set(tokens[:-1]) == {ticket.token}
    assert tokens[-1] != ticket.token  # a mail about no ticket: a token of its own


def test_mails_about_a_ticket_thread_under_its_opening(desk: AppDesk) -> None:
    ticket = desk.open(message_id="open@client.example.com")
    desk.reply(ticket, ALICE, "CLAIM", message_id="claim@client.example.com")
    desk.send(subject="HELP", message_id="help@client.example.com")
    desk.app.digests.send(MON)
    threads = {s.template: (s.mail.in_reply_to, s.mail.references) for s in desk.sent()}
    assert threads["confirmation.requester"] == (
        "open@client.example.com",
        ("open@client.example.com",),
    )
    assert threads["claimed.requester"] == ("", ("open@client.example.com",))
    assert threads["transcript.sender"] == (
        "claim@client.example.com",
        ("open@client.example.com", "claim@client.example.com"),
    )
    assert threads["help.sender"] == (
        "help@client.example.com",
        ("help@client.example.com",),
    )
    assert threads["digest.technician"] == ("", ())


def test_every_mail_about_a_ticket_is_an_event_on_it(desk: AppDesk) -> None:
    ticket = desk.open(cc=(Person("", PAUL),))
    notified = desk.events(ticket, EventKind.NOTIFIED)
    assert [(e.text, e.message_id) for e in notified] == [
        (f"confirmation to {MARIE}, {PAUL}", desk.sent()[0].mail.message_id),
        (f"announcement to {POOL}", desk.sent()[1].mail.message_id),
    ]
    assert all(e.is_internal for e in notified)


def test_what_is_queued_says_who_it_is_for(desk: AppDesk) -> None:
    ticket = desk.open()
    confirmation, announcement = (s.mail for s in desk.sent())
    assert (confirmation.audience, confirmation.is_capped) == (Audience.REQUESTER, True)
    assert (announcement.audience, announcement.is_capped) == (Audience.POOL, False)
    assert confirmation.ticket_number == announcement.ticket_number == ticket.number
    (queued,) = desk.store.outbox()[:1]
    assert queued.data.startswith(f"From: {HELPDESK}\r\n".encode())
    assert queued.state is OutboxState.PENDING


def test_mail_goes_out_from_the_configured_address(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(smtp={"from_address": "support@mail.example.com"})
    desk.open()
    queued = desk.store.outbox()[0]
    assert queued.data.startswith(b"From: support@mail.example.com\r\n")
    assert queued.mail.message_id.endswith("@mail.example.com")


@pytest.mark.parametrize(
    ("bounce", "marked", "error"),
    [
        (BounceFacts((), MARIE, "550 unknown"), False, ""),
        (BounceFacts(("other@example.com",), MARIE, "550"), False, ""),
        (BounceFacts(("OURS",), MARIE, "550 unknown"), True, f"{MARIE}: 550 unknown"),
        (BounceFacts(("OURS",)), True, "no reason given"),
        (BounceFacts(("OURS",), MARIE, "4.4.1", is_failure=False), False, ""),
    ],
)
def test_a_bounce_marks_the_mail_it_reports_failed(
    desk: AppDesk, bounce: BounceFacts, marked: bool, error: str
) -> None:
    desk.open()
    ours = desk.sent()[0].mail.message_id
    ids = tuple(ours if m == "OURS" else m for m in bounce.message_ids)
    with desk.store.transaction() as tx:
        found = desk.app.outbound.mark_bounced(
            tx, BounceFacts(ids, bounce.recipient, bounce.reason, bounce.is_failure)
        )
    assert found == (ours if marked else None)
    first = desk.store.outbox()[0]
    assert first.state is (OutboxState.FAILED if marked else OutboxState.PENDING)
    assert first.last_error == (f"bounced: {error}" if marked else "")
