"""The whole story of a ticket, on a real Dovecot and SMTP sink: the employee
writes to the mailbox, two technicians claim at the same moment, PDR, CALL,
RESOLVED, the beneficiary refuses, RESOLVED again, the requester accepts and
rates. Nothing internal ever reaches the requester side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import ReceivedMail, SmtpSink

pytestmark = pytest.mark.integration

MARIE, PAUL, PIERRE = "marie@example.com", "paul@example.com", "pierre@example.com"
ALICE, BOB, CHEF = "alice@example.com", "bob@example.com", "chef@example.com"
POOL = "techniciens@example.com"
REQUESTER_SIDE = (MARIE, PAUL, PIERRE)
INTERNAL_TEXTS = (
    "nobody picked up",
    "loose cable behind",
    "secret spooler note",
    "supervisor aside",
)


def build(
    sender: str,
    subject: str,
    body: str,
    reply_to: ReceivedMail | None = None,
    cc: str = "",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@example.com"
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    if reply_to is not None:
        msg["In-Reply-To"] = reply_to.message["Message-ID"]
        msg["References"] = reply_to.message["Message-ID"]
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def text_of(m: ReceivedMail) -> str:
    part = m.message.get_body(("plain",))
    return part.get_content() if part is not None else ""


@pytest.fixture
def daemon(
    tmp_path: Path, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> Iterator[Daemon]:
    extra = clean_mailbox.config_section()
    handle = start_daemon(tmp_path, smtp_sink.port, extra=extra)
    try:
        yield handle
    finally:
        assert handle.stop() == 0, handle.log.read_text()


class Story:
    def __init__(self, daemon: Daemon, sink: SmtpSink, mailbox: DovecotServer) -> None:
        self.daemon, self.sink, self.mailbox = daemon, sink, mailbox
        self.seen: set[bytes] = set()

    def write(
        self,
        sender: str,
        subject: str,
        body: str,
        reply_to: ReceivedMail | None = None,
        cc: str = "",
    ) -> None:
        """The mail arrives in the helpdesk's mailbox."""
        self.mailbox.append(HELPDESK, build(sender, subject, body, reply_to, cc))

    def expect(self, address: str, containing: str = "") -> ReceivedMail:
        def fits(m: ReceivedMail) -> bool:
            return (
                address in m.rcpt_tos
                and m.data not in self.seen
                and containing in text_of(m)
            )

        received = self.sink.wait_for(fits, timeout=30)[0]
        self.seen.add(received.data)
        return received

    def ticket(self) -> dict:  # type: ignore[type-arg]
        (summary,) = self.daemon.maild("tickets", "list", "--json")
        return self.daemon.maild("tickets", "show", summary["number"], "--json")


def test_story_of_a_ticket(
    daemon: Daemon, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> None:
    story = Story(daemon, smtp_sink, clean_mailbox)
    story.write(
        MARIE,
        "Écran noir",
        "Bénéficiaire: Paul Martin <paul@example.com>\n"
        "Téléphone: 0102030405\n\nL'écran de Paul reste noir.",
        cc=PIERRE,
    )
    confirmation = story.expect(MARIE)
    assert {MARIE, PAUL, PIERRE} <= set(confirmation.rcpt_tos)
    announcement = story.expect(POOL)
    number = story.ticket()["number"]
    assert number in str(announcement.message["Subject"])

    # Two technicians claim at the same moment, over two SMTP sessions.
    claims = [
        threading.Thread(
            target=daemon.send,
            args=(
                build(
                    who,
                    f"Re: {announcement.message['Subject']}",
                    "PRENDRE",
                    announcement,
                ),
            ),
            kwargs={"sender": who},
        )
        for who in (ALICE, BOB)
    ]
    for claim in claims:
        claim.start()
    for claim in claims:
        claim.join()
    answers = {who: text_of(story.expect(who)) for who in (ALICE, BOB)}
    owner = story.ticket()["owner"]
    loser = BOB if owner == ALICE else ALICE
    assert owner in (ALICE, BOB)
    assert owner in answers[loser]  # told who has it
    claimed = story.expect(MARIE)
    assert owner in text_of(claimed)

    story.write(owner, f"Re: [HD {number}]", "PDR nobody picked up")
    story.expect(owner)
    story.write(owner, f"Re: [HD {number}]", "APPEL\nloose cable behind the screen")
    story.expect(owner)
    story.write(owner, f"Re: [HD {number}]", "NOTE secret spooler note")
    story.expect(owner)
    story.write(CHEF, f"Re: [HD {number}]", "supervisor aside: watch this one")
    story.write(owner, f"Re: [HD {number}]", "RESOLU\nCâble remplacé.")
    story.expect(owner)
    resolved = story.expect(PAUL, "Câble remplacé")
    assert "REFUSE" in text_of(resolved) or "REFUSER" in text_of(resolved)

    story.write(
        PAUL,
        f"RE: {resolved.message['Subject']}",
        "REFUSER toujours noir ce matin",
        resolved,
    )
    assert "toujours noir" in text_of(story.expect(owner, "toujours noir"))
    assert story.ticket()["status"] == "in_progress"

    story.write(owner, f"Re: [HD {number}]", "RESOLVED\nÉcran changé.")
    story.expect(owner)
    story.expect(MARIE, "Écran changé")
    story.write(MARIE, f"Re: [HD {number}]", "ACCEPTER\nNOTER 5 Très rapide, merci")
    story.expect(owner, MARIE)

    ticket = story.ticket()
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "accepted")
    assert ticket["rating"] == {"score": 5, "comment": "Très rapide, merci"}
    assert ticket["callback_met"] is True
    assert ticket["beneficiary"]["address"] == PAUL
    assert ticket["watchers"] == [PIERRE]
    kinds = [e["kind"] for e in ticket["events"] if e["kind"] != "notified"]
    assert kinds == [
        "created",
        "claimed",
        "command_refused",
        "pdr",
        "call",
        "note",
        "comment",
        "resolved",
        "refused",
        "resolved",
        "accepted",
        "rated",
    ]
    first_call = next(e for e in ticket["events"] if e["kind"] == "pdr")
    assert ticket["first_call_at"] == first_call["at"]
    assert all(e["message_id"] for e in ticket["events"] if e["kind"] != "notified")

    # Nothing internal ever reached the requester, the beneficiary or a watcher.
    for mail in smtp_sink.messages:
        if set(mail.rcpt_tos) & set(REQUESTER_SIDE):
            body = mail.data.decode("utf-8", "replace") + text_of(mail)
            assert not [t for t in INTERNAL_TEXTS if t in body], mail.rcpt_tos
    assert not clean_mailbox.list_uids(HELPDESK, "INBOX")
