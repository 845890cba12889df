"""Who is told what: new tickets, comments, commands, answers; the answer caps."""

from __future__ import annotations

import pytest

from maild.core import notices
from maild.core.notify import (
    Author,
    Caps,
    ClosedTicketReply,
    CommandApplied,
    CommentAdded,
    DigestDue,
    HelpAsked,
    ListAsked,
    MailRefused,
    NewTicketHeld,
    NotApplied,
    TicketOpened,
    TimerFired,
    Transcript,
    is_over_cap,
    notifications_for,
)
from maild.domain import (
    Attachment,
    Audience,
    CommandResult,
    EventKind,
    Notice,
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
    assert confirmation.notice == notices.Confirmation(
        ticket, beneficiary_outside="x@other.test"
    )
    assert confirmation.ticket == ticket
    assert announcement.to == (POOL,)
    assert announcement.audience is Audience.POOL
    assert announcement.notice == notices.Announcement(ticket, notices.Announced.NEW)
    assert not announcement.is_capped


@pytest.mark.parametrize(
    ("note", "detail", "expected"),
    [
        ("", "", notices.Confirmation(make_view())),
        ("mystery_code", "secret-detail", notices.Confirmation(make_view())),
        (
            "beneficiary_refused",
            "pool@example.com",
            notices.Confirmation(make_view(), beneficiary_refused="pool@example.com"),
        ),
        (
            "beneficiary_outside",
            "",  # no address: the template says "the address given"
            notices.Confirmation(make_view(), beneficiary_outside=""),
        ),
    ],
)
def test_confirmation_says_why_a_beneficiary_was_not_taken(
    note: str, detail: str, expected: notices.Confirmation
) -> None:
    confirmation, _ = notifications_for(
        TicketOpened(make_view(), note, detail, "m1"), POOL
    )
    assert confirmation.notice == expected


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
    assert notification.notice == notices.Comment(ticket, "x@example.com", "hi")
    assert not notification.is_capped


def test_a_forwarded_comment_carries_its_attachments() -> None:
    files = (Attachment("a.pdf", "application/pdf", b"%PDF"),)
    (notification,) = notifications_for(
        CommentAdded(OWNED, Author.OWNER, "x@example.com", "hi", files), POOL
    )
    assert notification.attachments == files


BOB = "bob@example.com"
PUBLIC = ("marie@example.com", "paul@example.com", "chef@example.com")


@pytest.mark.parametrize(
    ("event", "template", "to", "notice"),
    [
        (EventKind.CLAIMED, "claimed", PUBLIC, notices.Claimed(OWNED, BOB)),
        (
            EventKind.RESOLVED,
            "resolved",
            PUBLIC,
            notices.Resolved(OWNED, BOB, "txt"),
        ),
        (
            EventKind.RELEASED,
            "announcement",
            (POOL,),
            notices.Announcement(OWNED, notices.Announced.RELEASED, BOB),
        ),
        (
            EventKind.ASSIGNED,
            "assigned",
            ("alice@example.com",),
            notices.Assigned(OWNED, BOB),
        ),
        (
            EventKind.REFUSED,
            "refused",
            ("alice@example.com",),
            notices.Refused(OWNED, BOB, "txt"),
        ),
        (
            EventKind.ACCEPTED,
            "accepted",
            ("alice@example.com",),
            notices.Accepted(OWNED, BOB, "txt"),
        ),
        (
            EventKind.CANCELLED,
            "cancelled",
            ("alice@example.com",),
            notices.Cancelled(OWNED, BOB, "txt"),
        ),
        (EventKind.CALL, None, None, None),
        (EventKind.TASK, None, None, None),
        (EventKind.NOTE, None, None, None),
        (EventKind.RATED, None, None, None),
    ],
)
def test_commands_tell_the_right_people(
    event: EventKind,
    template: str | None,
    to: tuple[str, ...] | None,
    notice: Notice | None,
) -> None:
    sent = notifications_for(CommandApplied(event, OWNED, BOB, "txt", None), POOL)
    if template is None:
        assert sent == ()
        return
    (notification,) = sent
    assert (notification.template, notification.to) == (template, to)
    assert notification.notice == notice
    assert notification.ticket == OWNED
    assert not notification.is_capped


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
    assert notification.notice == notices.Announcement(
        make_view(), notices.Announced.RELEASED, released_by="alice@example.com"
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
        *notifications_for(
            MailRefused("bob@example.com", "too_large", "Big", "m"), POOL
        ),
    ]
    assert [a.template for a in answers] == [
        "transcript",
        "closed_ticket",
        "help",
        "list",
        "not_applied",
        "new_ticket_held",
        "rejected",
    ]
    assert all(a.to == ("bob@example.com",) for a in answers)
    # Every answer is capped but the notice of a held new ticket, which the
    # use case sends once an hour at most (the sender's answers are spent).
    assert [a.is_capped for a in answers] == [True] * 5 + [False, True]
    assert all(a.audience is Audience.SENDER and a.in_reply_to == "m" for a in answers)
    assert [a.notice for a in answers] == [
        notices.Transcript(OWNED, results),
        notices.AboutTicket(OWNED),
        notices.Help(Role.TECHNICIAN),
        notices.TicketList(Role.SUPERVISOR, (OWNED,)),
        notices.NotApplied(),
        notices.NewTicketHeld("Printer", 20),
        notices.Rejected("Big", "too_large"),
    ]
    assert answers[4].ticket is None  # need to know: nothing of the ticket


def test_a_transcript_without_a_ticket_names_none() -> None:
    (answer,) = notifications_for(Transcript(None, "bob@example.com", (), "m"), POOL)
    assert answer.notice == notices.Transcript(None, ())
    assert answer.ticket is None


@pytest.mark.parametrize(
    ("role", "reader"),
    [
        (Role.REQUESTER, Role.REQUESTER),
        (Role.BENEFICIARY, Role.REQUESTER),
        (Role.WATCHER, Role.REQUESTER),
        (Role.TECHNICIAN, Role.TECHNICIAN),
        (Role.SUPERVISOR, Role.SUPERVISOR),
    ],
)
def test_help_and_list_show_staff_or_requester_commands(
    role: Role, reader: Role
) -> None:
    (help_answer,) = notifications_for(HelpAsked("bob@example.com", role, "m"), POOL)
    (list_answer,) = notifications_for(
        ListAsked("bob@example.com", role, (), "m"), POOL
    )
    assert help_answer.notice == notices.Help(reader)
    assert list_answer.notice == notices.TicketList(reader, ())


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
    assert notification.ticket == ticket
    if timer is not Timer.REANNOUNCE:
        assert notification.notice == notices.AboutTicket(ticket)
    assert not notification.is_capped


def test_breach_without_supervisors_goes_to_the_pool() -> None:
    (notification,) = notifications_for(TimerFired(Timer.BREACH, OWNED, ()), POOL)
    assert notification.to == (POOL,)


def test_reannouncement_carries_its_note() -> None:
    (notification,) = notifications_for(
        TimerFired(Timer.REANNOUNCE, make_view(), ()), POOL
    )
    assert notification.notice == notices.Announcement(
        make_view(), notices.Announced.REANNOUNCED
    )


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
    assert notification.notice == notices.Digest((OWNED,), ("new: 1",))
    assert notification.ticket is None
