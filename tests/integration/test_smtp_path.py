"""Mail in through the SMTP intake, ticket out, confirmation back: the real daemon."""

from __future__ import annotations

import hashlib
import re
import smtplib
import statistics
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.smtp_sink import ReceivedMail, SmtpSink

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 500


def new_ticket_mail(subject: str = "Imprimante en panne", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Marie Curie <marie@example.com>"
    msg["To"] = "helpdesk@example.com"
    msg["Cc"] = "Pierre <pierre@example.com>, outsider@elsewhere.test"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(
        "Application : Impression\n"
        "Urgence : haute\n"
        "Bénéficiaire : Paul Langevin <paul@example.com>\n"
        "Téléphone : 01 02 03 04 05\n"
        "\n"
        "L'imprimante du 2e étage ne répond plus.\n"
    )
    msg.add_attachment(
        PDF, maintype="application", subtype="pdf", filename="relevé d'erreurs.pdf"
    )
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="écran.png")
    return msg.as_bytes(policy=SMTP)


@pytest.fixture
def daemon(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Daemon]:
    handle = start_daemon(tmp_path, smtp_sink.port)
    try:
        yield handle
    finally:
        status = handle.stop()
        assert status == 0, handle.log.read_text()


def to(address: str):
    return lambda m: address in m.rcpt_tos


def test_new_ticket_end_to_end(daemon: Daemon, smtp_sink: SmtpSink) -> None:
    daemon.send(new_ticket_mail())
    confirmation = smtp_sink.wait_for(to("marie@example.com"), timeout=30)[0]
    announcement = smtp_sink.wait_for(to("techniciens@example.com"), timeout=30)[0]

    tickets = daemon.maild("tickets", "list", "--json")
    assert len(tickets) == 1
    ticket = tickets[0]
    number = ticket["number"]
    assert re.fullmatch(r"I\d{6}_0001", number)
    assert ticket["type"] == "incident"
    assert ticket["status"] == "new"
    assert ticket["subject"] == "Imprimante en panne"
    assert ticket["requester"] == {
        "name": "Marie Curie",
        "address": "marie@example.com",
    }
    assert ticket["beneficiary"] == {
        "name": "Paul Langevin",
        "address": "paul@example.com",
    }
    assert ticket["application"] == "Impression"
    assert ticket["urgency"] == "high"
    assert ticket["phone"] == "01 02 03 04 05"
    assert ticket["owner"] is None
    assert ticket["rating"] is None
    assert ticket["callback_due_at"] > ticket["created_at"]
    assert ticket["watchers"] == ["pierre@example.com"]  # outsider not taken
    attachments = {a["filename"]: a for a in ticket["attachments"]}
    assert (
        attachments["relevé d'erreurs.pdf"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    )
    assert attachments["relevé d'erreurs.pdf"]["size"] == len(PDF)
    assert attachments["relevé d'erreurs.pdf"]["content_type"] == "application/pdf"
    assert attachments["écran.png"]["sha256"] == hashlib.sha256(PNG).hexdigest()

    # Confirmation to requester, beneficiary and watcher; announcement to the pool.
    assert set(confirmation.rcpt_tos) == {
        "marie@example.com",
        "paul@example.com",
        "pierre@example.com",
    }
    assert f"[HD {number}]" in confirmation.message["Subject"]
    assert confirmation.message["Auto-Submitted"] == "auto-generated"
    body = confirmation.message.get_body(("plain",)).get_content()
    assert number in body
    assert f"[HD {number}]" in announcement.message["Subject"]
    assert "PRENDRE" in announcement.message.get_body(("plain",)).get_content()

    shown = daemon.maild("tickets", "show", number, "--json")
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds[0] == "created"
    assert kinds.count("notified") == 2
    assert "relevé d'erreurs.pdf" not in str(
        list((daemon.config.parent / "var").rglob("*"))
    )


def test_confirmation_latency(daemon: Daemon, smtp_sink: SmtpSink) -> None:
    """Time from the end of DATA to the confirmation at the sink (for the note)."""
    delays = []
    for n in range(10):
        start = time.monotonic()
        requester = f"user{n}@example.com"  # each under the answer caps
        daemon.send(
            new_ticket_mail(subject=f"Latence {n}").replace(
                b"marie@example.com", requester.encode()
            ),
            sender=requester,
        )
        smtp_sink.wait_for(to(requester), timeout=30)
        delays.append(time.monotonic() - start)
    print(
        f"\nDATA->confirmation over {len(delays)} mails: median "
        f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    assert len(daemon.maild("tickets", "list", "--json")) == 10


def test_foreign_recipient_refused_and_outsider_quarantined(
    daemon: Daemon, smtp_sink: SmtpSink
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        daemon.send(new_ticket_mail(), recipients=("someone@example.com",))
    outsider = new_ticket_mail().replace(b"marie@example.com", b"robot@service.test")
    daemon.send(outsider, sender="robot@service.test")
    stats = daemon.maild("stats", "--json")
    assert stats["quarantine"] == 1
    assert daemon.maild("tickets", "list", "--json") == []
    assert not [m for m in smtp_sink.messages if "robot@service.test" in m.rcpt_tos]


def test_auto_reply_is_never_answered(daemon: Daemon, smtp_sink: SmtpSink) -> None:
    daemon.send(
        new_ticket_mail(subject="Absent du bureau", Auto_Submitted="auto-replied")
    )
    daemon.send(new_ticket_mail(subject="Réel"))
    smtp_sink.wait_for(lambda m: "Réel" in m.message["Subject"], count=2, timeout=30)
    assert not [m for m in smtp_sink.messages if "Absent" in str(m.message["Subject"])]
    assert [t["subject"] for t in daemon.maild("tickets", "list", "--json")] == ["Réel"]


def test_same_mail_twice_is_one_ticket(daemon: Daemon, smtp_sink: SmtpSink) -> None:
    raw = new_ticket_mail()
    daemon.send(raw)
    daemon.send(raw)  # an MTA retry after a lost 250
    smtp_sink.wait_for(to("techniciens@example.com"), timeout=30)
    assert len(daemon.maild("tickets", "list", "--json")) == 1


def test_request_address_gives_a_service_request(
    daemon: Daemon, smtp_sink: SmtpSink
) -> None:
    daemon.send(new_ticket_mail(), recipients=("demandes@example.com",))
    smtp_sink.wait_for(to("techniciens@example.com"), timeout=30)
    (ticket,) = daemon.maild("tickets", "list", "--json")
    assert ticket["type"] == "request"
    assert ticket["number"].startswith("S")


def test_answer_caps_hold_back_confirmations(
    daemon: Daemon, smtp_sink: SmtpSink
) -> None:
    """Six mails in an hour from one address: the sixth is not confirmed."""
    for n in range(6):
        daemon.send(new_ticket_mail(subject=f"Cap {n}"))
    smtp_sink.wait_for(to("techniciens@example.com"), count=6, timeout=30)
    confirmed = [m for m in smtp_sink.messages if to("marie@example.com")(m)]
    assert len(confirmed) == 5
    assert len(daemon.maild("tickets", "list", "--json")) == 6


def _subjects(mails: list[ReceivedMail]) -> list[str]:
    return [str(m.message["Subject"]) for m in mails]
