"""ApplyReply: commands, comments, the transcript, and what strangers are told."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from maild.core import notices
from maild.domain import (
    Attachment,
    AuthResultsBlock,
    CloseReason,
    CommandResult,
    EventKind,
    Person,
    Ticket,
    TicketState,
    Timers,
)
from tests.unit.app.conftest import ALICE, BOB, CHEF, MARIE, MON, POOL, AppDesk

PAUL = Person("Paul Langevin", "paul@example.com")  # a watcher
PIERRE = "pierre@example.com"  # the beneficiary
ZOE = "zoe@example.com"  # in the domain, on no ticket, not staff
SCREENSHOT = Attachment("screen.png", "image/png", b"\x89PNG\x00\x01")


def opened(desk: AppDesk) -> Ticket:
    """Marie's ticket for Pierre, Paul in Cc."""
    return desk.open(text=f"Beneficiary: {PIERRE}\n\nPrinter jammed.", cc=(PAUL,))


def claimed(desk: AppDesk) -> Ticket:
    ticket = opened(desk)
    desk.reply(ticket, ALICE, "CLAIM")
    return desk.ticket(ticket.number)


def resolved(desk: AppDesk) -> Ticket:
    ticket = opened(desk)
    desk.reply(ticket, ALICE, "CLAIM\nRESOLVED new toner")
    return desk.ticket(ticket.number)


def closed(desk: AppDesk) -> Ticket:
    ticket = resolved(desk)
    desk.reply(ticket, MARIE, "ACCEPT")
    return desk.ticket(ticket.number)


def results_to(desk: AppDesk, sender: str) -> tuple[CommandResult, ...]:
    """The results of the last transcript sent to sender."""
    return desk.sent("transcript.sender", to=sender)[-1].notice.results


def test_claim_then_resolved_in_one_reply(desk: AppDesk) -> None:
    ticket = opened(desk)
    desk.clock.now = MON + timedelta(hours=1)
    desk.reply(ticket, ALICE, "CLAIM\nRESOLVED\nNew toner cartridge.")
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner) == (TicketState.RESOLVED, ALICE)
    assert after.resolved_at == after.first_call_at == desk.clock.now
    assert after.callback_met is True  # before 13:00
    assert after.timers == Timers(auto_close_at=desk.clock.now + timedelta(days=7))
    kinds = [e.kind for e in desk.events(ticket) if e.kind is not EventKind.NOTIFIED]
    assert kinds == [EventKind.CREATED, EventKind.CLAIMED, EventKind.RESOLVED]
    (claimed_mail,) = desk.sent("claimed.requester")
    assert claimed_mail.notice.claimed_by == ALICE
    assert claimed_mail.to == (MARIE, PIERRE, PAUL.address)
    (resolved_mail,) = desk.sent("resolved.requester")
    assert resolved_mail.notice.resolution == "New toner cartridge."
    assert resolved_mail.notice.ticket.status is TicketState.RESOLVED
    assert results_to(desk, ALICE) == (
        CommandResult("CLAIM", is_done=True),
        CommandResult("RESOLVED New toner cartridge.", is_done=True),
    )


def test_the_transcript_lists_every_command_in_order(desk: AppDesk) -> None:
    ticket = opened(desk)
    desk.reply(ticket, ALICE, "CLAIM\nCLAM\nCALL reached her\nThe rest is prose.")
    assert results_to(desk, ALICE) == (
        CommandResult("CLAIM", is_done=True),
        CommandResult("CLAM", is_done=False, reason="near_keyword", detail="CLAIM"),
        CommandResult("CALL reached her", is_done=True),
    )
    (transcript,) = desk.sent("transcript.sender")
    assert transcript.to == (ALICE,)
    assert transcript.notice.ticket.number == ticket.number
    assert transcript.mail.in_reply_to == desk.store.mail_records()[-1].message_id


Setup = Callable[[AppDesk], Ticket]


@pytest.mark.parametrize(
    ("setup", "sender", "text", "reason", "detail"),
    [
        (opened, MARIE, "CLAIM", "not_staff", "new"),
        (claimed, BOB, "CLAIM", "already_claimed", ALICE),
        (claimed, ALICE, "CLAIM", "already_claimed", ALICE),
        (claimed, BOB, "RESOLVED done", "not_owner", ALICE),
        (opened, ALICE, "RESOLVED done", "wrong_state", "new"),
        (claimed, ALICE, "ACCEPT", "not_requester", "in_progress"),
        (opened, MARIE, "ACCEPT", "wrong_state", "new"),
        (claimed, ALICE, f"ASSIGN {BOB}", "not_supervisor", "in_progress"),
        (opened, CHEF, f"ASSIGN {MARIE}", "not_assignable", MARIE),
        (claimed, MARIE, "RATE 9", "bad_score", ""),
        (claimed, ALICE, "RESOLVE", "near_keyword", "RESOLVED"),
        (claimed, ALICE, "TASK", "missing_text", ""),
        (resolved, MARIE, "CANCEL", "wrong_state", "resolved"),
        (claimed, MARIE, "RATE 4", "wrong_state", "in_progress"),
    ],
)
def test_a_refused_command_changes_nothing_and_says_why(
    desk: AppDesk, setup: Setup, sender: str, text: str, reason: str, detail: str
) -> None:
    before = setup(desk)
    desk.reply(before, sender, text)
    assert desk.ticket(before.number) == before
    ((result,),) = [s.notice.results for s in desk.sent("transcript.sender", sender)][
        -1:
    ]
    assert (result.is_done, result.reason, result.detail) == (False, reason, detail)
    refusal = desk.events(before, EventKind.COMMAND_REFUSED)[-1]
    assert refusal.text == f"{result.line} ({reason})"
    assert refusal.is_internal
    assert desk.sent("comment.owner") == desk.sent("comment.requester") == []


def test_a_stranger_is_told_nothing_of_the_ticket(desk: AppDesk) -> None:
    before = claimed(desk)
    desk.reply(before, ZOE, "RESOLVED\nI fixed it myself, call me.")
    assert desk.ticket(before.number) == before
    (answer,) = desk.sent(to=ZOE)
    assert answer.template == "not_applied.sender"
    assert answer.notice == notices.NotApplied()
    assert answer.ticket_id is None
    zoes = desk.store.mail_records()[-1].message_id
    assert answer.mail.ticket_number == ""
    assert answer.mail.references == (zoes,)  # her own mail, nothing of ours
    assert not answer.mail.message_id.startswith(before.token)
    (refused,) = desk.events(before, EventKind.COMMAND_REFUSED)
    assert (refused.is_internal, refused.actor) == (True, ZOE)


def test_a_strangers_comment_is_kept_for_staff_and_not_answered(
    desk: AppDesk,
) -> None:
    ticket = claimed(desk)
    sent = len(desk.sent())
    desk.reply(ticket, ZOE, "This printer is cursed.")
    (comment,) = desk.events(ticket, EventKind.COMMENT)
    assert (comment.actor, comment.text, comment.is_internal) == (
        ZOE,
        "This printer is cursed.",
        True,
    )
    assert len(desk.sent()) == sent


def test_an_outsider_answering_our_mail_gets_nothing_at_all(desk: AppDesk) -> None:
    ticket = claimed(desk)
    sent = len(desk.sent())
    desk.reply(ticket, "someone@gmail.com", "CANCEL\nPlease close it.")
    assert desk.ticket(ticket.number).status is TicketState.IN_PROGRESS
    assert len(desk.sent()) == sent  # not_applied dropped by the safety net


@pytest.mark.parametrize(
    ("sender", "template", "to", "is_internal"),
    [
        (MARIE, "comment.owner", (ALICE,), False),  # the requester
        (PIERRE, "comment.owner", (ALICE,), False),  # the beneficiary
        (PAUL.address, "comment.owner", (ALICE,), False),  # a watcher
        (ALICE, "comment.requester", (MARIE, PIERRE), False),  # the owner
        (BOB, None, (), True),  # other staff: internal
        (CHEF, None, (), True),
    ],
)
def test_a_comment_is_forwarded_by_who_wrote_it(
    desk: AppDesk,
    sender: str,
    template: str | None,
    to: tuple[str, ...],
    is_internal: bool,
) -> None:
    ticket = claimed(desk)
    transcripts = len(desk.sent("transcript.sender"))
    desk.reply(ticket, sender, "The tray is empty again.")
    (comment,) = desk.events(ticket, EventKind.COMMENT)
    assert (comment.actor, comment.is_internal) == (sender, is_internal)
    forwarded = desk.sent("comment.owner") + desk.sent("comment.requester")
    assert [(s.template, s.to) for s in forwarded] == (
        [(template, to)] if template else []
    )
    for sent in forwarded:
        assert (sent.notice.author, sent.notice.comment) == (
            sender,
            "The tray is empty again.",
        )
    assert len(desk.sent("transcript.sender")) == transcripts  # no command


def test_a_comment_on_an_unclaimed_ticket_goes_to_the_pool(desk: AppDesk) -> None:
    ticket = opened(desk)
    desk.reply(ticket, MARIE, "It smells of burnt toner now.")
    (forwarded,) = desk.sent("comment.owner")
    assert forwarded.to == (POOL,)


def test_attachments_of_a_reply_are_kept_and_travel_with_the_comment(
    desk: AppDesk,
) -> None:
    ticket = claimed(desk)
    desk.reply(ticket, MARIE, "Here is the error.", attachments=(SCREENSHOT,))
    (forwarded,) = desk.sent("comment.owner")
    assert forwarded.mail.attachments == (SCREENSHOT,)
    (kept,) = desk.store.attachments(ticket.id)
    (comment,) = desk.events(ticket, EventKind.COMMENT)
    assert kept.attachment == SCREENSHOT
    assert kept.event_id is not None
    assert "screen.png" in forwarded.notice.ticket.attachment_names
    assert comment.text == "Here is the error."


def test_an_attachment_alone_is_a_comment(desk: AppDesk) -> None:
    ticket = claimed(desk)
    desk.reply(ticket, MARIE, "", attachments=(SCREENSHOT,))
    (forwarded,) = desk.sent("comment.owner")
    assert (forwarded.notice.comment, forwarded.mail.attachments) == ("", (SCREENSHOT,))


def test_attachments_with_commands_only_are_kept_on_the_ticket(desk: AppDesk) -> None:
    ticket = claimed(desk)
    desk.reply(ticket, ALICE, "TASK toner replaced", attachments=(SCREENSHOT,))
    (kept,) = desk.store.attachments(ticket.id)
    assert (kept.attachment, kept.event_id) == (SCREENSHOT, None)
    assert desk.events(ticket, EventKind.COMMENT) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("NOTE firmware is old", EventKind.NOTE),
        ("TASK toner replaced", EventKind.TASK),
        ("CALL she was out", EventKind.CALL),
        ("PDR\nVoicemail full", EventKind.PDR),
    ],
)
def test_work_logged_by_the_owner_stays_internal(
    desk: AppDesk, text: str, kind: EventKind
) -> None:
    ticket = claimed(desk)
    sent = len(desk.sent())
    desk.reply(ticket, ALICE, text)
    (event,) = desk.events(ticket, kind)
    assert event.is_internal
    assert event.text == text.split(maxsplit=1)[1].strip()
    assert [s.template for s in desk.sent()[sent:]] == ["transcript.sender"]


def test_a_call_meets_the_call_back_deadline(desk: AppDesk) -> None:
    ticket = claimed(desk)
    desk.clock.now = MON.replace(hour=14)  # after 13:00
    desk.reply(ticket, ALICE, "PDR")
    after = desk.ticket(ticket.number)
    assert (after.first_call_at, after.callback_met) == (desk.clock.now, False)
    assert (after.timers.breach_at, after.timers.reminder_at) == (None, None)
    assert after.timers.pdr_retry_at == MON.replace(hour=16)  # 17:00 in Paris
    desk.clock.now = MON.replace(hour=15)
    desk.reply(ticket, ALICE, "CALL reached her")
    assert desk.ticket(ticket.number).first_call_at == MON.replace(hour=14)


def test_release_puts_the_ticket_back_in_the_pool(desk: AppDesk) -> None:
    ticket = claimed(desk)
    desk.reply(ticket, ALICE, "RELEASE")
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner) == (TicketState.NEW, None)
    assert after.timers.reannounce_at == MON.replace(minute=30)
    (announcement,) = desk.sent("announcement.pool")[1:]
    assert announcement.notice.announced is notices.Announced.RELEASED
    assert announcement.notice.released_by == ALICE


def test_a_supervisor_assigns_a_ticket_to_a_technician(desk: AppDesk) -> None:
    ticket = claimed(desk)
    desk.reply(ticket, CHEF, f"ASSIGN Bob <{BOB}>")
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner) == (TicketState.IN_PROGRESS, BOB)
    (assigned,) = desk.sent("assigned.owner")
    assert (assigned.to, assigned.notice.assigned_by) == ((BOB,), CHEF)
    (event,) = desk.events(ticket, EventKind.ASSIGNED)
    assert event.text == BOB


def test_accept_closes_the_ticket_and_tells_its_owner(desk: AppDesk) -> None:
    ticket = resolved(desk)
    desk.reply(ticket, PIERRE, "ACCEPT\nThank you!")
    after = desk.ticket(ticket.number)
    assert (after.status, after.close_reason, after.closed_at) == (
        TicketState.CLOSED,
        CloseReason.ACCEPTED,
        MON,
    )
    assert after.timers == Timers()
    (accepted,) = desk.sent("accepted.owner")
    assert (accepted.to, accepted.notice.accepted_by) == ((ALICE,), PIERRE)


def test_refuse_reopens_the_ticket_to_its_owner(desk: AppDesk) -> None:
    ticket = resolved(desk)
    desk.reply(ticket, MARIE, "REFUSE still jams")
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner, after.resolved_at) == (
        TicketState.IN_PROGRESS,
        ALICE,
        None,
    )
    assert after.timers.auto_close_at is None
    (refused,) = desk.sent("refused.owner")
    assert (refused.to, refused.notice.reason) == ((ALICE,), "still jams")


@pytest.mark.parametrize(
    ("setup", "sender", "told"),
    [(opened, MARIE, POOL), (claimed, MARIE, ALICE), (claimed, CHEF, ALICE)],
)
def test_cancel_closes_the_ticket_and_tells_who_works_on_it(
    desk: AppDesk, setup: Setup, sender: str, told: str
) -> None:
    ticket = setup(desk)
    desk.reply(ticket, sender, "CANCEL found another printer")
    after = desk.ticket(ticket.number)
    assert (after.status, after.close_reason) == (
        TicketState.CLOSED,
        CloseReason.CANCELLED,
    )
    (cancelled,) = desk.sent("cancelled.owner")
    assert (cancelled.to, cancelled.notice.reason) == ((told,), "found another printer")


def test_a_reply_to_a_closed_ticket_is_kept_and_its_sender_told(
    desk: AppDesk,
) -> None:
    before = closed(desk)
    desk.reply(before, MARIE, "CLAIM\nIt jams again!")
    assert desk.ticket(before.number) == before
    comment = desk.events(before, EventKind.COMMENT)[-1]
    assert (comment.text, comment.is_internal) == ("CLAIM\nIt jams again!", True)
    (answer,) = desk.sent("closed_ticket.sender")
    assert answer.to == (MARIE,)
    assert answer.notice.ticket.number == before.number
    assert desk.store.mail_records()[-1].reason == "reply on closed I261130_0001"


def test_a_stranger_writing_to_a_closed_ticket_learns_nothing(desk: AppDesk) -> None:
    ticket = closed(desk)
    desk.reply(ticket, ZOE, "Is this still open?")
    (answer,) = desk.sent(to=ZOE)
    assert (answer.template, answer.ticket_id) == ("not_applied.sender", None)


def test_staff_may_note_a_closed_ticket(desk: AppDesk) -> None:
    ticket = closed(desk)
    desk.reply(ticket, ALICE, "NOTE customer called back\nRELEASE")
    (note,) = desk.events(ticket, EventKind.NOTE)
    assert (note.text, note.is_internal) == ("customer called back", True)
    assert desk.ticket(ticket.number).status is TicketState.CLOSED
    results = results_to(desk, ALICE)
    assert [(r.is_done, r.reason) for r in results] == [
        (True, ""),
        (False, "wrong_state"),
    ]


def test_attachments_of_a_reply_to_a_closed_ticket_are_kept(desk: AppDesk) -> None:
    ticket = closed(desk)
    desk.reply(ticket, MARIE, "Here is the invoice", attachments=(SCREENSHOT,))
    kept = [a.attachment for a in desk.store.attachments(ticket.id)]
    assert SCREENSHOT in kept


def test_rate_on_a_closed_ticket_counts_within_the_period(desk: AppDesk) -> None:
    ticket = closed(desk)
    desk.clock.now = MON + timedelta(days=29)
    desk.reply(ticket, MARIE, "RATE 4\nQuick, thanks.")
    desk.reply(ticket, PIERRE, "RATE 5/5")  # a later rating replaces it
    after = desk.ticket(ticket.number)
    assert (after.rating_score, after.rating_comment) == (5, "")
    assert after.status is TicketState.CLOSED
    assert [e.text for e in desk.events(ticket, EventKind.RATED)] == [
        "4/5 Quick, thanks.",
        "5/5",
    ]
    assert results_to(desk, MARIE) == (CommandResult("RATE 4 Quick, thanks.", True),)


def test_rate_after_the_period_is_only_kept(desk: AppDesk) -> None:
    ticket = closed(desk)
    desk.clock.now = MON + timedelta(days=30)
    desk.reply(ticket, MARIE, "RATE 1")
    assert desk.ticket(ticket.number).rating_score is None
    assert desk.events(ticket, EventKind.RATED) == []
    assert desk.sent("closed_ticket.sender", MARIE)


def test_a_cancelled_ticket_cannot_be_rated(desk: AppDesk) -> None:
    ticket = opened(desk)
    desk.reply(ticket, MARIE, "CANCEL")
    desk.reply(ticket, MARIE, "RATE 5")
    assert desk.ticket(ticket.number).rating_score is None
    ((result,),) = [results_to(desk, MARIE)]
    assert (result.is_done, result.reason) == (False, "wrong_state")


TRUSTED = {"security": {"trusted_authserv_ids": ["mx.example.com"]}}
PASSED = (AuthResultsBlock(("mx.example.com; dmarc=pass header.from=example.com",)),)


def test_a_command_from_an_unverified_sender_is_refused_by_keyword_only(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    before = opened(desk)
    desk.reply(before, ALICE, "CLAIM\nRESOLVED visit http://evil.example.org")
    assert desk.ticket(before.number) == before
    assert results_to(desk, ALICE) == (
        CommandResult("CLAIM", False, "unverified_sender"),
        CommandResult("RESOLVED", False, "unverified_sender"),
    )
    refused = desk.events(before, EventKind.COMMAND_REFUSED)
    assert refused[-1].text == (
        "RESOLVED visit http://evil.example.org (unverified_sender)"
    )


def test_a_near_keyword_from_an_unverified_sender_names_the_keyword_only(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = opened(desk)
    desk.reply(ticket, ALICE, "RESOLVE see http://evil.example.org")
    assert results_to(desk, ALICE) == (
        CommandResult("RESOLVED", False, "unverified_sender"),
    )


def test_an_unverified_senders_comment_is_kept_not_forwarded(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = opened(desk)
    desk.reply(ticket, MARIE, "Please send your password to me.")
    (comment,) = desk.events(ticket, EventKind.COMMENT)
    assert comment.is_internal
    assert desk.sent("comment.owner") == []


def test_a_verified_sender_works_as_usual(make_desk: Callable[..., AppDesk]) -> None:
    desk = make_desk(**TRUSTED)
    ticket = opened(desk)
    desk.reply(ticket, ALICE, "CLAIM", authentication_results=PASSED)
    assert desk.ticket(ticket.number).owner == ALICE


def test_commands_come_from_the_mails_own_text_not_what_it_encloses(
    desk: AppDesk,
) -> None:
    ticket = opened(desk)
    enclosed = "From: Marie\nRESOLVED\nCANCEL"
    desk.reply(ticket, ALICE, f"CLAIM\n\n{enclosed}", own_text="CLAIM")
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner) == (TicketState.IN_PROGRESS, ALICE)
    assert results_to(desk, ALICE) == (CommandResult("CLAIM", True),)
    (forwarded,) = desk.sent("comment.requester")
    assert forwarded.notice.comment == enclosed


def test_quoted_text_never_triggers_anything(desk: AppDesk) -> None:
    ticket = resolved(desk)
    quoted = "Thanks!\n\nOn Mon, 30 Nov 2026, Alice wrote:\n> ACCEPT\n> CANCEL"
    desk.reply(ticket, MARIE, quoted)
    assert desk.ticket(ticket.number).status is TicketState.RESOLVED


def test_commands_apply_on_the_ticket_as_the_previous_one_left_it(
    desk: AppDesk,
) -> None:
    ticket = opened(desk)
    desk.reply(ticket, CHEF, f"ASSIGN {BOB}\nCLAIM\nRELEASE")
    results = results_to(desk, CHEF)
    assert [(r.is_done, r.reason) for r in results] == [
        (True, ""),
        (False, "already_claimed"),
        (True, ""),
    ]
    assert results[1].detail == BOB
    after = desk.ticket(ticket.number)
    assert replace(after, timers=Timers()) == replace(
        ticket, timers=Timers(), status=TicketState.NEW, owner=None
    )
