"""Hostile and robot mail on a real store and service: nothing leaks, nothing acts.

The Ticket Trick (a third-party service's mail, or an outsider's reply tagged
with a real ticket number), foreign Reply-To, spoofed commands under a
trusted MTA, and bounces that mark the notification they report as failed.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.adapters.database.models import OutboxRow, StaffRow
from maild.core import notices
from maild.domain import Audience, Notification, Role
from tests.support.desk import MARIE, MON, Desk

ALICE = "alice@example.com"
CHEF = "chef@example.com"
OUTSIDER = "noreply@accounts.thirdparty.example"
TRUSTED = '[security]\ntrusted_authserv_ids = ["mx.example.com"]\n'
PASS = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com"
FAIL = "Authentication-Results: mx.example.com; dmarc=fail header.from=example.com"
FORGED = "Authentication-Results: evil.example.net; dmarc=pass header.from=example.com"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path, TRUSTED)
    yield handle
    handle.close()


def recipients(desk: Desk) -> list[str]:
    return [a for row in desk.outbox() for a in row.recipients.split(",")]


def body_of(row: OutboxRow) -> str:
    message = email.message_from_bytes(row.data, policy=email.policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


def opened(desk: Desk) -> str:
    """Marie's ticket, her mail passed by the trusted MTA (else only staff are told)."""
    return desk.open("Printer broken", "Nothing prints.", MARIE, PASS)


def kinds(desk: Desk, number: str) -> list[tuple[str, bool]]:
    return [
        (e["kind"], e["internal"])
        for e in desk.ticket(number)["events"]
        if e["kind"] != "notified"
    ]


def test_a_third_party_service_mail_is_quarantined_and_nothing_is_sent(
    desk: Desk,
) -> None:
    desk.mail(
        OUTSIDER,
        "Verify your email address",
        "Your code is 493021. Click https://thirdparty.example/verify?t=abc",
    )
    assert desk.outbox() == []
    (row,) = desk.mails()
    assert row.state == "quarantined"
    assert row.reason.startswith("outsider:")


def test_an_outsider_with_a_real_tag_is_an_outsider(desk: Desk) -> None:
    """A guessed number names no ticket (need to know): quarantined, unanswered."""
    number = opened(desk)
    before = len(desk.outbox())
    desk.mail(
        OUTSIDER,
        f"[HD {number}] Verify your email address",
        "RESOLVED\nYour code is 493021.",
    )
    assert desk.outbox()[before:] == []
    assert OUTSIDER not in recipients(desk)
    rows = desk.mails()
    assert (rows[-1].state, rows[-1].reason[:9]) == ("quarantined", "outsider:")
    assert kinds(desk, number) == [("created", False)]
    assert desk.ticket(number)["status"] == "new"


def test_an_outsider_answering_a_mail_of_ours_reaches_staff_only(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    number = opened(desk)
    confirmation = desk.outbox()[0].message_id
    before = len(desk.outbox())
    # A person outside (a robot's no-reply address gets no answer at all,
    # before the safety net is even reached: see tests/unit/test_robots.py).
    stranger = "jane@thirdparty.example"
    with caplog.at_level(logging.WARNING, logger="maild.app.queue_notifications"):
        desk.mail(
            stranger,
            "Re: Verify your email address",
            "RESOLVED\nYour code is 493021.",
            f"In-Reply-To: <{confirmation}>",
        )
    assert desk.outbox()[before:] == []  # its answer may not leave
    assert stranger not in recipients(desk)
    assert "outside the accepted domains" in caplog.text
    assert kinds(desk, number)[-1] == ("command_refused", True)
    assert desk.ticket(number)["status"] == "new"


def test_the_safety_net_under_every_notification(desk: Desk) -> None:
    with desk.parts.store.transaction() as tx:
        tx.add(StaffRow(address="tech@partner.net", role="technician", added_at=MON))
        desk.parts.service.outbound.queue(
            tx,
            Notification(
                "help",
                Audience.SENDER,
                ("marie@example.com", "x@evil.example.net", "tech@partner.net"),
                notices.Help(Role.REQUESTER),
            ),
            None,
            MON,
        )
    assert recipients(desk) == ["marie@example.com", "tech@partner.net"]


def test_maild_answers_from_never_a_foreign_reply_to(desk: Desk) -> None:
    reply_to = "Reply-To: x@evil.example.net"
    desk.mail(MARIE, "Printer broken", "Nothing prints.", reply_to, PASS)
    assert "x@evil.example.net" not in recipients(desk)
    assert MARIE in recipients(desk)


@pytest.mark.parametrize(
    ("header", "is_done"),
    [(PASS, True), (FAIL, False), (FORGED, False), ("X-No: results", False)],
)
def test_a_command_counts_only_when_the_trusted_mta_passed_it(
    desk: Desk, header: str, is_done: bool
) -> None:
    number = opened(desk)
    desk.mail(
        ALICE, f"Re: [HD {number}]", "CLAIM\nOn my way, see http://x.example", header
    )
    ticket = desk.ticket(number)
    assert (ticket["status"] == "in_progress") is is_done
    (transcript,) = [r for r in desk.outbox() if r.recipients == ALICE]
    text = body_of(transcript)
    if is_done:
        assert ("comment", False) in kinds(desk, number)
    else:
        assert kinds(desk, number)[-2:] == [
            ("command_refused", True),
            ("comment", True),
        ]
        assert "could not confirm" in text
        assert "http://x.example" not in text
        assert recipients(desk).count(MARIE) == 1  # the comment was not forwarded


def test_a_spoofed_requester_comment_stays_internal(desk: Desk) -> None:
    number = opened(desk)
    desk.mail(ALICE, f"Re: [HD {number}]", "CLAIM", PASS)
    before = len(desk.outbox())
    desk.mail(MARIE, f"Re: [HD {number}]", "Please phone +1 900 555 0100", FAIL)
    assert desk.outbox()[before:] == []  # not forwarded to the owner
    assert kinds(desk, number)[-1] == ("comment", True)


def dsn(message_id: str, action: str = "failed") -> bytes:
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: helpdesk@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be "
        "delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; marie@example.com\r\n"
        f"Action: {action}\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: helpdesk@example.com\r\nTo: marie@example.com\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "--B--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("action", "state"), [("failed", "failed"), ("delayed", "pending")]
)
def test_a_bounce_marks_its_notification_failed_on_its_ticket(
    desk: Desk, action: str, state: str
) -> None:
    number = opened(desk)
    (confirmation,) = [r for r in desk.outbox() if r.recipients == MARIE]
    desk.handle(dsn(confirmation.message_id, action))
    (row,) = [r for r in desk.outbox() if r.message_id == confirmation.message_id]
    assert row.state == state
    if action == "failed":
        assert row.last_error == "bounced: marie@example.com: 552 5.2.2 Mailbox full"
    (bounce,) = [e for e in desk.ticket(number)["events"] if e["kind"] == "bounce"]
    assert "marie@example.com" in bounce["text"]
    assert desk.ticket(number)["status"] == "new"  # nothing else changes
    assert len(desk.outbox()) == 2  # and nothing is answered


def test_supervisors_are_not_told_by_a_spoofed_cancel(desk: Desk) -> None:
    number = opened(desk)
    desk.mail(CHEF, f"Re: [HD {number}]", "CANCEL", FORGED)
    assert desk.ticket(number)["status"] == "new"
