"""Bounces traced to the notification they report; forged maild headers bind nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from maild.core.bounces import BounceFacts, is_own_message_id, read_bounce
from maild.core.classify import (
    Ignored,
    NewTicket,
    Outsider,
    Reply,
    classify,
)
from maild.core.parse import parse_mail
from maild.domain import Attachment, AutoSignals, IgnoreReason, InboundMail, Person
from tests.support.factories import POLICY, make_mail

OURS = "0123456789abcdef01234567.0123456789ab@example.com"
OTHER = "fedcba9876543210fedcba98.ba9876543210@example.com"
STATUS = (
    "Reporting-MTA: dns; mx.example.com\r\n\r\n"
    "Final-Recipient: rfc822; <Marie@Example.com>\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <marie@example.com>:\r\n"
    "    Recipient address rejected: User unknown\r\n"
)
HEADERS = (
    "From: Support <helpdesk@example.com>\r\n"
    "To: marie@example.com\r\n"
    "Subject: [HD I261130_0001] Confirmation\r\n"
    f"Message-ID: <{OURS}>\r\n"
    "References: <user-1@client.example.com>\r\n"
    "X-Maild-Ticket: I261130_0001\r\n"
)
BOUNCE = AutoSignals(is_delivery_report=True, is_null_return_path=True)


@dataclass
class Threads:
    sent: dict[str, str] = field(
        default_factory=lambda: {OURS: "I261130_0001", OTHER: "I261130_0002"}
    )

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return next((self.sent[m] for m in message_ids if m in self.sent), None)

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        return (
            frozenset({"marie@example.com"}) if number in self.sent.values() else None
        )

    def staff(self) -> dict[str, str]:
        return {}


def dsn(
    *parts: tuple[str, str], text: str = "", refs: tuple[str, ...] = ()
) -> InboundMail:
    return make_mail(
        sender=Person("Mail Delivery System", "mailer-daemon@mx.example.com"),
        subject="Undelivered Mail Returned to Sender",
        text=text,
        auto=BOUNCE,
        in_reply_to=refs,
        attachments=tuple(
            Attachment("", ctype, body.encode()) for ctype, body in parts
        ),
    )


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        (  # Postfix, headers only
            dsn(("message/delivery-status", STATUS), ("text/rfc822-headers", HEADERS)),
            BounceFacts(
                (OURS,),
                "marie@example.com",
                "550 5.1.1 <marie@example.com>: Recipient address rejected: "
                "User unknown",
            ),
        ),
        (  # the whole mail returned, once parse keeps it as an attachment
            dsn(
                ("message/global-delivery-status", STATUS),
                ("message/rfc822", HEADERS + "\r\nHello"),
            ),
            BounceFacts(
                (OURS,),
                "marie@example.com",
                "550 5.1.1 <marie@example.com>: Recipient address rejected: "
                "User unknown",
            ),
        ),
        (  # Exchange lists the original headers in its text
            dsn(
                text="Delivery has failed to these recipients or groups:\n\n"
                "marie@example.com\n\nOriginal message headers:\n\n"
                f"Message-ID: <{OURS}>\nSubject: [HD I261130_0001] x\n"
            ),
            BounceFacts((OURS,)),
        ),
        (  # only the thread headers name it; no status: assumed failed
            dsn(refs=(OURS,)),
            BounceFacts((OURS,)),
        ),
        (  # our shape quoted in the text, outside any header
            dsn(text=f"Your message <{OURS}> could not be delivered."),
            BounceFacts((OURS,)),
        ),
        (  # a "delayed" report is not a failure; Status stands in for Diagnostic
            dsn(
                (
                    "message/delivery-status",
                    "Original-Recipient: rfc822;paul@example.com\n"
                    "Action: delayed\nStatus: 4.4.1\n",
                ),
                ("text/rfc822-headers", f"Message-ID: <{OURS}>\n"),
            ),
            BounceFacts((OURS,), "paul@example.com", "4.4.1", is_failure=False),
        ),
        (  # someone else's Message-IDs are not ours
            dsn(
                ("message/delivery-status", "Action: failed\n"),
                (
                    "text/rfc822-headers",
                    "Message-ID: <abc@example.com>\nReferences: "
                    "<0123456789abcdef01234567.0123456789ab@elsewhere.net>\n",
                ),
                text="",
            ),
            BounceFacts(()),
        ),
    ],
)
def test_read_bounce(mail: InboundMail, expected: BounceFacts) -> None:
    assert read_bounce(mail, "example.com") == expected


def test_the_returned_message_id_comes_before_any_other() -> None:
    mail = dsn(("text/rfc822-headers", HEADERS), refs=(OTHER,))
    assert read_bounce(mail, "example.com").message_ids == (OURS, OTHER)


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        (OURS, True),
        (f"<{OURS}>", True),
        (OURS.upper().replace("EXAMPLE.COM", "example.com"), False),  # hex is lower
        ("0123456789abcdef01234567.0123456789ab@EXAMPLE.com", True),
        ("0123456789abcdef01234567.0123456789ab@example.net", False),
        ("abc.123@example.com", False),
        ("", False),
    ],
)
def test_own_message_id_shape(message_id: str, expected: bool) -> None:
    assert is_own_message_id(message_id, "example.com") is expected


def test_a_bounce_is_traced_to_its_ticket_through_the_returned_headers() -> None:
    mail = dsn(("message/delivery-status", STATUS), ("text/rfc822-headers", HEADERS))
    outcome = classify(mail, POLICY, Threads())
    assert isinstance(outcome, Ignored)
    assert outcome.reason is IgnoreReason.BOUNCE
    assert outcome.ticket_number == "I261130_0001"
    assert outcome.bounce is not None
    assert outcome.bounce.message_ids == (OURS,)
    assert outcome.detail.startswith("delivery status report: marie@example.com: 550")


def test_a_bounce_found_by_its_thread_keeps_that_ticket() -> None:
    mail = dsn(("text/rfc822-headers", f"Message-ID: <{OURS}>\n"), refs=(OTHER,))
    outcome = classify(mail, POLICY, Threads())
    assert isinstance(outcome, Ignored)
    assert outcome.ticket_number == "I261130_0002"  # the thread said it first
    assert outcome.detail == "delivery status report"


def test_a_bounce_of_nothing_of_ours_concerns_no_ticket() -> None:
    outcome = classify(dsn(text="Mailbox full"), POLICY, Threads())
    assert isinstance(outcome, Ignored)
    assert (outcome.ticket_number, outcome.detail) == (None, "delivery status report")
    assert outcome.bounce == BounceFacts(())


def test_the_postfix_fixture_parsed_from_bytes() -> None:
    raw = (
        Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "bounce_dsn.eml"
    ).read_bytes()
    facts = read_bounce(parse_mail(raw), "example.com")
    assert facts.recipient == "nobody@example.com"
    assert facts.reason == "550 5.1.1 User unknown"
    assert facts.message_ids == ()  # it quotes an id of another shape


def test_a_returned_mail_inside_the_report_keeps_its_headers() -> None:
    """Postfix and Exim return the whole mail as message/rfc822, no disposition."""
    raw = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: helpdesk@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n"
        "\r\n--B\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n"
        "--A\r\nContent-Type: text/plain\r\n\r\nI could not deliver it.\r\n"
        "--A\r\nContent-Type: text/html\r\n\r\n<p>I could not deliver it.</p>\r\n"
        "--A--\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Description: Undelivered Message\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        f"From: helpdesk@example.com\r\nTo: gone@example.com\r\n"
        f"Message-ID: <{OURS}>\r\nSubject: [HD I261129_0001] Ticket\r\n\r\n"
        "Votre ticket est enregistre.\r\n--B--\r\n"
    ).encode()
    mail = parse_mail(raw)
    facts = read_bounce(mail, "example.com")
    assert facts.message_ids == (OURS,)
    assert (facts.recipient, facts.reason) == (
        "gone@example.com",
        "550 5.1.1 User unknown",
    )
    assert "I could not deliver it." in mail.text  # the report's own words
    assert "Votre ticket" not in mail.text  # the returned mail is not the text


# Copies of maild's own headers in inbound mail.


def raw_mail(sender: str, subject: str, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (
        f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <h-{abs(hash(head))}@client.example.com>\r\n{head}\r\n"
        "The printer is broken.\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A forged X-Maild-Ticket binds nothing: no tag, no thread, a new ticket.
        (
            raw_mail("marie@example.com", "Printer", "X-Maild-Ticket: I261130_0001"),
            NewTicket,
        ),
        (
            raw_mail("x@evil.example.net", "Printer", "X-Maild-Ticket: I261130_0001"),
            Outsider,
        ),
        # X-Maild-Loop counts only on mail from our own address.
        (
            raw_mail(
                "marie@example.com", "Printer", "X-Maild-Loop: helpdesk@example.com"
            ),
            NewTicket,
        ),
        (
            raw_mail(
                "Support <helpdesk@example.com>",
                "[HD I261130_0001] x",
                "X-Maild-Loop: helpdesk@example.com",
            ),
            Ignored,
        ),
        # The real tag still threads, whatever X-Maild-Ticket claims.
        (
            raw_mail(
                "marie@example.com",
                "Re: [HD I261130_0002] x",
                "X-Maild-Ticket: I261130_0001",
            ),
            Reply,
        ),
    ],
)
def test_copies_of_our_internal_headers_are_ignored(raw: bytes, expected: type) -> None:
    outcome = classify(parse_mail(raw), POLICY, Threads())
    assert type(outcome) is expected
    if isinstance(outcome, Reply):
        assert outcome.ticket_number == "I261130_0002"
    if isinstance(outcome, Ignored):
        assert outcome.reason is IgnoreReason.LOOP
