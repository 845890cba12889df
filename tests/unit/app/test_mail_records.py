"""What a mail's record keeps for `maild mails list`: who sent it, its subject,
its Message-ID, and a reason that says enough, whatever became of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from maild.adapters.memory import KeptMail
from maild.domain import Attachment, AutoSignals, MailState, Person
from maild.errors import MailTooLarge, UnparseableMail
from tests.unit.app.conftest import ALICE, MARIE, SMTP, AppDesk

HEADERS = (
    b"From: Marie Curie <marie@example.com>\r\n"
    b"Subject: Scan of the contract\r\n"
    b"Message-ID: <big@client.example.com>\r\n\r\n"
)


def last_record(desk: AppDesk) -> KeptMail:
    return desk.store.mail_records()[-1]


def test_a_mail_that_opens_a_ticket_keeps_its_head(desk: AppDesk) -> None:
    desk.send(subject="Imprimante en panne", message_id="p1@client.example.com")
    record = last_record(desk)
    assert (record.sender, record.subject, record.message_id) == (
        MARIE,
        "Imprimante en panne",
        "p1@client.example.com",
    )


def test_a_subject_is_kept_to_a_header_lines_length(desk: AppDesk) -> None:
    desk.send(subject="x" * 5000)
    assert last_record(desk).subject == "x" * 998


@pytest.mark.parametrize(
    "rejected",
    [MailTooLarge("30000000 bytes"), UnparseableMail("broken MIME")],
    ids=["too_large", "unparseable"],
)
def test_a_refused_mail_keeps_what_its_header_says(
    desk: AppDesk, rejected: Exception
) -> None:
    desk.send(rejected, raw=HEADERS + b"...")
    record = last_record(desk)
    assert record.state is MailState.QUARANTINED
    assert (record.sender, record.subject, record.message_id) == (
        MARIE,
        "Scan of the contract",
        "big@client.example.com",
    )


def test_a_mail_quarantined_after_a_crash_keeps_what_its_header_says(
    desk: AppDesk,
) -> None:
    desk.app.quarantine(HEADERS + b"body", SMTP, "internal error: KeyError")
    record = last_record(desk)
    assert (record.reason, record.sender, record.subject) == (
        "internal error: KeyError",
        MARIE,
        "Scan of the contract",
    )


def test_a_mail_given_up_on_keeps_its_head(desk: AppDesk) -> None:
    mail, raw = desk.mail(subject="Écran noir"), b"the crashing mail"
    desk.renderer.failure = RuntimeError("a bug")
    for _ in range(desk.settings.limits.handling_attempts):
        with pytest.raises(RuntimeError):
            desk.send(mail, raw=raw)
    desk.renderer.failure = None
    desk.send(mail, raw=raw)
    record = last_record(desk)
    assert (record.reason, record.subject) == ("handling failed 3 times", "Écran noir")


def bounce_of(message_id: str, action: str = "failed") -> dict[str, object]:
    """The fields of a delivery report about one of our mails."""
    headers = f"Message-ID: <{message_id}>\nSubject: whatever\n".encode()
    status = (
        "Reporting-MTA: dns; mx.example.com\n\n"
        "Final-Recipient: rfc822; marie@example.com\n"
        f"Action: {action}\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\n"
    ).encode()
    return {
        "sender": Person("Mail Delivery System", "mailer-daemon@example.com"),
        "subject": "Undelivered Mail Returned to Sender",
        "text": "Your message could not be delivered.",
        "auto": AutoSignals(is_delivery_report=True),
        "attachments": (
            Attachment("status", "message/delivery-status", status),
            Attachment("headers", "text/rfc822-headers", headers),
        ),
    }


def test_a_bounce_says_which_notification_it_reports(desk: AppDesk) -> None:
    desk.open()
    confirmation = desk.sent("confirmation.requester")[0].mail.message_id
    desk.send(**bounce_of(confirmation))
    assert last_record(desk).reason == (
        "bounce: delivery status report: marie@example.com: "
        f"550 5.1.1 mailbox unknown (notification <{confirmation}> marked failed)"
    )


def test_a_delay_report_names_the_notification_it_is_about(desk: AppDesk) -> None:
    desk.open()
    confirmation = desk.sent("confirmation.requester")[0].mail.message_id
    desk.send(**bounce_of(confirmation, action="delayed"))
    assert last_record(desk).reason.endswith(f"(about <{confirmation}>)")


def test_a_bounce_naming_no_mail_of_ours_says_what_it_knows(desk: AppDesk) -> None:
    desk.send(**bounce_of("someone-else@elsewhere.example.org"))
    assert last_record(desk).reason == (
        "bounce: delivery status report: marie@example.com: 550 5.1.1 mailbox unknown"
    )


def test_a_reply_from_an_unverified_sender_says_so_in_its_record(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(security={"trusted_authserv_ids": ["mx.example.com"]})
    ticket = desk.open()
    desk.reply(ticket, ALICE, "CLAIM")
    assert last_record(desk).reason == (
        f"reply on {ticket.number}: 0 command(s) done, 1 refused (sender not verified)"
    )
