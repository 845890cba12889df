"""OpenTicket: the ticket a new mail opens, who is told, and the per-sender cap."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from maild.core.notices import Announced
from maild.domain import (
    Attachment,
    Audience,
    EventKind,
    MailDisposition,
    MailOrigin,
    MailState,
    Person,
    Role,
    TicketState,
    TicketType,
    Timers,
    Urgency,
)
from tests.unit.app.conftest import (
    ALICE,
    DEMANDES,
    HELPDESK,
    MARIE,
    MON,
    POOL,
    AppDesk,
)

MARIE_P = Person("Marie Curie", MARIE)
PAUL = Person("Paul Langevin", "paul@example.com")
PIERRE = Person("Pierre Curie", "pierre@example.com")
BODY = "Application: Messagerie\nPhone: 01 02 03 04 05\n\nOutlook will not start."


def test_a_new_mail_opens_a_ticket_with_its_fields(desk: AppDesk) -> None:
    ticket = desk.open(subject="Outlook broken", text=BODY)
    assert ticket.number == "I261130_0001"
    assert (ticket.ticket_type, ticket.status, ticket.owner) == (
        TicketType.INCIDENT,
        TicketState.NEW,
        None,
    )
    assert (ticket.subject, ticket.description) == (
        "Outlook broken",
        "Outlook will not start.",
    )
    assert (ticket.requester, ticket.beneficiary) == (MARIE_P, MARIE_P)
    assert (ticket.application, ticket.phone, ticket.urgency) == (
        "Messagerie",
        "01 02 03 04 05",
        Urgency.MEDIUM,
    )
    assert ticket.created_at == MON
    # medium: 4 business hours from 10:00 in Paris; reminder at 75 %
    assert ticket.callback_due_at == MON.replace(hour=13)
    assert ticket.timers == Timers(
        reminder_at=MON.replace(hour=12),
        breach_at=MON.replace(hour=13),
        reannounce_at=MON.replace(minute=30),
    )
    assert len(ticket.token) == 24


def test_the_opening_is_the_first_event_of_the_ticket(desk: AppDesk) -> None:
    ticket = desk.open(subject="Outlook broken", message_id="open@client.example.com")
    created = desk.events(ticket)[0]
    assert (created.kind, created.actor, created.text, created.at) == (
        EventKind.CREATED,
        MARIE,
        "Outlook broken",
        MON,
    )
    assert created.message_id == "open@client.example.com"
    assert created.mail_id == ticket.source_mail_id
    assert not created.is_internal


def test_the_public_is_confirmed_and_the_pool_told(desk: AppDesk) -> None:
    ticket = desk.open(message_id="open@client.example.com", cc=(PAUL,))
    confirmation, announcement = desk.sent()
    assert confirmation.template == "confirmation.requester"
    assert confirmation.to == (MARIE, PAUL.address)
    assert confirmation.notice.ticket.number == ticket.number
    assert confirmation.notice.ticket.watchers == (PAUL,)
    assert confirmation.notice.beneficiary_outside is None
    assert confirmation.notification.is_capped
    assert confirmation.mail.in_reply_to == "open@client.example.com"
    assert announcement.template == "announcement.pool"
    assert announcement.to == (POOL,)
    assert announcement.notice.announced is Announced.NEW
    assert not announcement.notification.is_capped
    for sent in (confirmation, announcement):
        assert sent.ticket_id == ticket.id
        assert sent.mail.ticket_number == ticket.number
        assert sent.mail.references == ("open@client.example.com",)


def test_numbers_count_per_type_and_day(desk: AppDesk) -> None:
    desk.send()
    desk.send(to=(Person("", DEMANDES),))
    desk.send()
    desk.clock.now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # Tuesday in Paris
    desk.send()
    assert [t.number for t in desk.store.tickets()] == [
        "I261130_0001",
        "S261130_0001",
        "I261130_0002",
        "I261201_0001",
    ]


@pytest.mark.parametrize(
    ("to", "envelope", "text", "expected"),
    [
        ((DEMANDES,), (), "", TicketType.REQUEST),
        ((HELPDESK, DEMANDES), (), "", TicketType.INCIDENT),  # both: an incident
        ((HELPDESK,), (DEMANDES,), "", TicketType.REQUEST),  # the envelope first
        ((DEMANDES,), (), "Type: incident\n\nx", TicketType.REQUEST),  # address wins
        (("it@example.com",), (), "Type: demande\n\nx", TicketType.REQUEST),
        (("it@example.com",), (), "x", TicketType.INCIDENT),
    ],
)
def test_the_type_comes_from_the_address_else_the_type_line(
    desk: AppDesk,
    to: tuple[str, ...],
    envelope: tuple[str, ...],
    text: str,
    expected: TicketType,
) -> None:
    origin = MailOrigin("smtp", envelope_recipients=envelope)
    desk.send(to=tuple(Person("", a) for a in to), text=text, origin=origin)
    (ticket,) = desk.store.tickets()
    assert ticket.ticket_type is expected
    assert ticket.number[0] == expected.letter


@pytest.mark.parametrize(
    ("text", "is_high_importance", "urgency", "due_hour"),
    [
        ("", False, Urgency.MEDIUM, 13),
        ("Urgency: high", False, Urgency.HIGH, 10),
        ("Urgence : basse", False, Urgency.LOW, 17),
        ("", True, Urgency.HIGH, 10),  # flagged high by the client
        ("Urgency: low", True, Urgency.LOW, 17),  # the line wins
    ],
)
def test_urgency_sets_the_call_back_deadline(
    desk: AppDesk,
    text: str,
    is_high_importance: bool,
    urgency: Urgency,
    due_hour: int,
) -> None:
    ticket = desk.open(text=f"{text}\n\nHelp", is_high_importance=is_high_importance)
    assert ticket.urgency is urgency
    assert ticket.callback_due_at == MON.replace(hour=due_hour)
    assert ticket.timers.breach_at == ticket.callback_due_at


def test_a_beneficiary_in_the_domain_is_taken_and_confirmed(desk: AppDesk) -> None:
    ticket = desk.open(text="Beneficiary: Pierre Curie <pierre@example.com>\n\nx")
    assert (ticket.requester, ticket.beneficiary) == (MARIE_P, PIERRE)
    (confirmation,) = desk.sent("confirmation.requester")
    assert confirmation.to == (MARIE, PIERRE.address)


@pytest.mark.parametrize(
    ("named", "outside", "refused"),
    [
        ("paul@gmail.com", "paul@gmail.com", None),
        (POOL, None, POOL),  # the helpdesk's own address
        (HELPDESK, None, HELPDESK),
        ("pierre%evil.org@example.com", None, "pierre%evil.org@example.com"),
    ],
)
def test_a_beneficiary_not_taken_leaves_the_requester_and_says_why(
    desk: AppDesk, named: str, outside: str | None, refused: str | None
) -> None:
    ticket = desk.open(text=f"Bénéficiaire: {named}\n\nx")
    assert ticket.beneficiary == MARIE_P
    (confirmation,) = desk.sent("confirmation.requester")
    assert confirmation.to == (MARIE,)
    assert confirmation.notice.beneficiary_outside == outside
    assert confirmation.notice.beneficiary_refused == refused


def test_watchers_are_the_cc_in_the_domain_but_no_one_twice(desk: AppDesk) -> None:
    cc = (
        PAUL,
        Person("", "ext@gmail.com"),
        Person("", POOL),
        Person("", HELPDESK),
        Person("", MARIE),
        PIERRE,  # the beneficiary
        Person("Paul", PAUL.address),
        Person("", "odd%relay@example.com"),
    )
    ticket = desk.open(text=f"Beneficiary: {PIERRE.address}\n\nx", cc=cc)
    with desk.store.transaction() as tx:
        assert tx.watchers(ticket.id) == (PAUL,)
    (confirmation,) = desk.sent("confirmation.requester")
    assert confirmation.to == (MARIE, PIERRE.address, PAUL.address)


def test_attachments_are_kept_byte_for_byte_with_the_opening(desk: AppDesk) -> None:
    files = (
        Attachment("écran.png", "image/png", b"\x89PNG\r\n\x00", is_inline=True),
        Attachment("../../etc/passwd", "text/plain", b"root:x:0:0"),
    )
    ticket = desk.open(attachments=files)
    kept = desk.store.attachments(ticket.id)
    assert tuple(k.attachment for k in kept) == files
    assert {k.event_id for k in kept} != {None}
    assert len({k.event_id for k in kept}) == 1
    (confirmation,) = desk.sent("confirmation.requester")
    assert confirmation.notice.ticket.attachment_names == (
        "écran.png",
        "../../etc/passwd",
    )


def open_many(desk: AppDesk, count: int, sender: str = MARIE) -> list[MailDisposition]:
    return [
        desk.send(sender=Person("", sender), subject=f"Printer {n}")
        for n in range(count)
    ]


def test_the_21st_ticket_in_an_hour_is_held_not_opened(desk: AppDesk) -> None:
    outcomes = open_many(desk, 21)
    assert outcomes[-1] is MailDisposition.QUARANTINED
    assert len(desk.store.tickets()) == 20
    held = desk.store.mail_records()[-1]
    assert (held.state, held.ticket_id) == (MailState.QUARANTINED, None)
    assert held.reason == (
        "new_tickets_per_hour: 20 tickets opened by marie@example.com this hour"
    )
    # Marie had her five answers this hour; the notice goes all the same, once.
    (notice,) = [a for a in desk.store.answers() if a.template == "new_ticket_held"]
    assert not notice.is_held
    (told,) = desk.sent("new_ticket_held.sender")
    assert told.to == (MARIE,)
    assert open_many(desk, 1) == [MailDisposition.QUARANTINED]
    assert len(desk.sent("new_ticket_held.sender")) == 1


def test_a_sender_over_the_cap_is_told_once_an_hour(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(limits={"new_tickets_per_hour": 3})
    outcomes = open_many(desk, 5)
    assert outcomes == [MailDisposition.DONE] * 3 + [MailDisposition.QUARANTINED] * 2
    (told,) = desk.sent("new_ticket_held.sender")
    assert told.to == (MARIE,)
    assert (told.notice.held_subject, told.notice.opened_last_hour) == ("Printer 3", 3)
    assert told.notification.audience is Audience.SENDER
    assert told.ticket_id is None
    desk.clock.now = MON + timedelta(minutes=61)  # the first three are an hour old
    assert open_many(desk, 1) == [MailDisposition.DONE]


def test_staff_are_not_capped(make_desk: Callable[..., AppDesk]) -> None:
    desk = make_desk(limits={"new_tickets_per_hour": 3})
    desk.store.add_staff("nadia@example.com", Role.TECHNICIAN)
    assert set(open_many(desk, 5, ALICE)) == {MailDisposition.DONE}
    assert set(open_many(desk, 5, "nadia@example.com")) == {MailDisposition.DONE}
    assert len(desk.store.tickets()) == 10
