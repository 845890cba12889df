"""Who is told what: new tickets, comments, commands, answers; the answer caps."""

from __future__ import annotations

import pytest

from maild.core.notify import (
    Author,
    Caps,
    ClosedTicketReply,
    CommandApplied,
    CommentAdded,
    DigestDue,
    HelpAsked,
    ListAsked,
    NewTicketHeld,
    NotApplied,
    TicketOpened,
    TimerFired,
    Transcript,
    is_over_cap,
    notifications_for,
)
from maild.domain import (
    Audience,
    CommandResult,
    EventKind,
    Person,
    Role,
    TicketView,
    Timer,
)
from tests.support.factories import make_view

POOL = "pool@example.com"
PAUL = Person("Paul", "paul@example.com")
OWNED = make_view(
    owner="alice@example.com",
    beneficiary=PAUL,
    watchers=(Person("", "chef@example.com"),),
)


def test_ticket_opened_confirms_to_people_and_announces_to_pool() -> None:
    ticket = make_view(
        beneficiary=PAUL,
        watchers=(Person("", "chef@example.com"), Person("", "paul@example.com")),
    )
    confirmation, announcement = notifications_for(
        TicketOpened(ticket, "beneficiary_outside", "x@other.test", "m1@client"), POOL
    )
    assert confirmation.template == "confirmation"
    assert confirmation.audience is Audience.REQUESTER
    assert confirmation.to == (
        "marie@example.com",
        "paul@example.com",
        "chef@example.com",
    )
    assert confirmation.is_capped
    assert confirmation.in_reply_to == "m1@client"
    assert (confirmation.note, confirmation.note_detail) == (
        "beneficiary_outside",
        "x@other.test",
    )
    assert announcement.to == (POOL,)
    assert announcement.audience is Audience.POOL
    assert not announcement.is_capped


def test_requester_who_is_beneficiary_gets_one_copy() -> None:
    confirmation, _ = notifications_for(TicketOpened(make_view(), "", "", ""), POOL)
    assert confirmation.to == ("marie@example.com",)
    nobody = make_view(beneficiary=Person("", ""))
    confirmation, _ = notifications_for(TicketOpened(nobody, "", "", ""), POOL)
    assert confirmation.to == ("marie@example.com",)


@pytest.mark.parametrize(
    ("ticket", "author", "template", "audience", "to"),
    [
        (OWNED, Author.PARTY, "comment", Audience.OWNER, ("alice@example.com",)),
        (make_view(), Author.PARTY, "comment", Audience.OWNER, (POOL,)),
        (
            OWNED,
            Author.OWNER,
            "comment",
            Audience.REQUESTER,
            ("marie@example.com", "paul@example.com"),
        ),
        (OWNED, Author.STAFF, None, None, None),
        (OWNED, Author.STRANGER, None, None, None),
    ],
)
def test_comments_are_forwarded_by_author(
    ticket,
    author,
    template,
    audience,
    to,
) -> None:
    sent = notifications_for(
        CommentAdded(ticket, author, "x@example.com", "hi", ()), POOL
    )
    if template is None:
        assert sent == ()
        return
    (notification,) = sent
    assert (notification.template, notification.audience, notification.to) == (
        template,
        audience,
        to,
    )
    assert notification.text == "hi"
    assert not notification.is_capped


@pytest.mark.parametrize(
    ("event", "template", "to"),
    [
        (
            EventKind.CLAIMED,
            "claimed",
            ("marie@example.com", "paul@example.com", "chef@example.com"),
        ),
        (
            EventKind.RESOLVED,
            "resolved",
            ("marie@example.com", "paul@example.com", "chef@example.com"),
        ),
        (EventKind.RELEASED, "announcement", (POOL,)),
        (EventKind.ASSIGNED, "assigned", ("alice@example.com",)),
        (EventKind.REFUSED, "refused", ("alice@example.com",)),
        (EventKind.ACCEPTED, "accepted", ("alice@example.com",)),
        (EventKind.CANCELLED, "cancelled", ("alice@example.com",)),
        (EventKind.CALL, None, None),
        (EventKind.TASK, None, None),
        (EventKind.NOTE, None, None),
        (EventKind.RATED, None, None),
    ],
)
def test_commands_tell_the_right_people(
    event: EventKind, template: str | None, to: tuple[str, ...] | None
) -> None:
    sent = notifications_for(
        CommandApplied(event, OWNED, "bob@example.com", "txt", None), POOL
    )
    if template is None:
        assert sent == ()
        return
    (notification,) = sent
    assert (notification.template, notification.to) == (template, to)
    assert notification.actor == "bob@example.com"


def test_released_ticket_is_announced_with_a_note() -> None:
    (notification,) = notifications_for(
        CommandApplied(
            EventKind.RELEASED,
            make_view(),
            "alice@example.com",
            "",
            "alice@example.com",
        ),
        POOL,
    )
    assert (notification.note, notification.note_detail) == (
        "released",
        "alice@example.com",
    )


def test_cancel_of_an_unclaimed_ticket_tells_the_pool() -> None:
    (notification,) = notifications_for(
        CommandApplied(EventKind.CANCELLED, make_view(), "marie@example.com", "", None),
        POOL,
    )
    assert notification.to == (POOL,)


def test_answers_to_the_sender_are_capped() -> None:
    results = (CommandResult("CLAIM", is_done=True),)
    answers = [
        *notifications_for(Transcript(OWNED, "bob@example.com", results, "m"), POOL),
        *notifications_for(ClosedTicketReply(OWNED, "bob@example.com", "m"), POOL),
        *notifications_for(HelpAsked("bob@example.com", Role.TECHNICIAN, "m"), POOL),
        *notifications_for(
            ListAsked("bob@example.com", Role.SUPERVISOR, (OWNED,), "m"), POOL
        ),
        *notifications_for(NotApplied("bob@example.com", "m"), POOL),
        *notifications_for(NewTicketHeld("bob@example.com", "Printer", 20, "m"), POOL),
    ]
    assert [a.template for a in answers] == [
        "transcript",
        "closed_ticket",
        "help",
        "list",
        "not_applied",
        "new_ticket_held",
    ]
    assert all(a.is_capped and a.to == ("bob@example.com",) for a in answers)
    assert all(a.audience is Audience.SENDER and a.in_reply_to == "m" for a in answers)
    assert answers[0].results == results
    assert answers[2].role == "technician"
    assert answers[3].tickets == (OWNED,)
    assert answers[4].ticket is None  # need to know: nothing of the ticket
    assert (answers[5].text, answers[5].lines) == ("Printer", ("20",))


@pytest.mark.parametrize(
    ("hour", "day", "expected"),
    [(0, 0, False), (4, 19, False), (5, 5, True), (0, 20, True), (4, 20, True)],
)
def test_caps(hour: int, day: int, expected: bool) -> None:
    assert is_over_cap(hour, day, Caps(per_hour=5, per_day=20)) is expected


@pytest.mark.parametrize(
    ("timer", "ticket", "template", "to"),
    [
        (Timer.REMINDER, OWNED, "reminder", ("alice@example.com",)),
        (Timer.REMINDER, make_view(), "reminder", (POOL,)),
        (Timer.PDR_RETRY, OWNED, "pdr_retry", ("alice@example.com",)),
        (Timer.BREACH, OWNED, "breach", ("chef@example.com",)),
        (Timer.REANNOUNCE, make_view(), "announcement", (POOL,)),
        (
            Timer.AUTO_CLOSE,
            OWNED,
            "auto_closed",
            ("marie@example.com", "paul@example.com", "chef@example.com"),
        ),
    ],
)
def test_timers_tell_the_right_people(
    timer: Timer, ticket: TicketView, template: str, to: tuple[str, ...]
) -> None:
    (notification,) = notifications_for(
        TimerFired(timer, ticket, ("chef@example.com",)), POOL
    )
    assert (notification.template, notification.to) == (template, to)
    assert not notification.is_capped


def test_breach_without_supervisors_goes_to_the_pool() -> None:
    (notification,) = notifications_for(TimerFired(Timer.BREACH, OWNED, ()), POOL)
    assert notification.to == (POOL,)


def test_reannouncement_carries_its_note() -> None:
    (notification,) = notifications_for(
        TimerFired(Timer.REANNOUNCE, make_view(), ()), POOL
    )
    assert notification.note == "reannounced"


@pytest.mark.parametrize(
    ("role", "audience"),
    [(Role.TECHNICIAN, Audience.TECHNICIAN), (Role.SUPERVISOR, Audience.SUPERVISOR)],
)
def test_digests(role: Role, audience: Audience) -> None:
    (notification,) = notifications_for(
        DigestDue("bob@example.com", role, (OWNED,), ("new: 1",)), POOL
    )
    assert (notification.template, notification.audience) == ("digest", audience)
    assert notification.to == ("bob@example.com",)
    assert notification.tickets == (OWNED,)
    assert notification.lines == ("new: 1",)
