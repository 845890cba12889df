"""Working a ticket entirely by mail, through the real daemon's SMTP intake."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.smtp_sink import ReceivedMail, SmtpSink

pytestmark = pytest.mark.integration

MARIE = "marie@example.com"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CHEF = "chef@example.com"
POOL = "techniciens@example.com"


@pytest.fixture
def daemon(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Daemon]:
    handle = start_daemon(tmp_path, smtp_sink.port, language="en")
    try:
        yield handle
    finally:
        assert handle.stop() == 0, handle.log.read_text()


def mail(
    sender: str,
    subject: str,
    body: str,
    reply_to: ReceivedMail | None = None,
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    if reply_to is not None:
        msg["In-Reply-To"] = reply_to.message["Message-ID"]
        msg["References"] = reply_to.message["Message-ID"]
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


class Desk:
    """A test's view of the helpdesk: send as someone, wait for what they get."""

    def __init__(self, daemon: Daemon, sink: SmtpSink) -> None:
        self.daemon = daemon
        self.sink = sink
        self.seen: set[bytes] = set()

    def send(
        self,
        sender: str,
        subject: str,
        body: str,
        reply_to: ReceivedMail | None = None,
        **headers: str,
    ) -> None:
        self.daemon.send(
            mail(sender, subject, body, reply_to, **headers), sender=sender
        )

    def next_to(self, address: str, containing: str = "") -> ReceivedMail:
        """Wait for the next mail to address not returned before."""

        def fits(m: ReceivedMail) -> bool:
            return (
                address in m.rcpt_tos
                and m.data not in self.seen
                and containing in text_of(m)
            )

        received = self.sink.wait_for(fits, timeout=30)[0]
        self.seen.add(received.data)
        return received

    def ticket(self, number: str) -> dict:  # type: ignore[type-arg]
        return self.daemon.maild("tickets", "show", number, "--json")


def text_of(m: ReceivedMail) -> str:
    body = m.message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def outlook_fr_quote(new: str) -> str:
    return (
        f"{new}\n\n"
        "De : Support informatique <helpdesk@example.com>\n"
        "Envoyé : lundi 30 novembre 2026 09:12\n"
        "À : Marie Curie <marie@example.com>\n"
        "Objet : [HD I261130_0001] Imprimante en panne\n\n"
        "CLAIM\nRESOLVED\nACCEPT\n"
    )


@pytest.fixture
def desk(daemon: Daemon, smtp_sink: SmtpSink) -> Desk:
    return Desk(daemon, smtp_sink)


def open_ticket(desk: Desk, **headers: str) -> tuple[str, ReceivedMail, ReceivedMail]:
    body = "Application: Printing\n\nNothing prints."
    desk.send(MARIE, "Printer broken", body, **headers)
    confirmation = desk.next_to(MARIE)
    announcement = desk.next_to(POOL)
    number = desk.daemon.maild("tickets", "list", "--json")[-1]["number"]
    return number, confirmation, announcement


def test_full_life_of_a_ticket(desk: Desk) -> None:
    number, confirmation, announcement = open_ticket(desk)

    # A technician claims from the pool and logs the call in one reply.
    desk.send(
        ALICE,
        f"Re: {announcement.message['Subject']}",
        "CLAIM\nCALL reached Marie, paper jam",
        announcement,
    )
    transcript = desk.next_to(ALICE)
    assert "done" in text_of(transcript).lower()
    claimed = desk.next_to(MARIE)
    assert ALICE in text_of(claimed)
    # Every mail about the ticket threads to the mail that opened it.
    opening = confirmation.message["In-Reply-To"]
    assert opening
    for threaded in (confirmation, announcement, claimed):
        assert opening in threaded.message["References"]
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("in_progress", ALICE)
    assert ticket["first_call_at"] is not None
    assert ticket["callback_met"] is True

    # The requester answers from Outlook: only the new text travels to the owner.
    desk.send(
        MARIE,
        f"RE: {confirmation.message['Subject']}",
        outlook_fr_quote("Merci, c'est urgent pour la paie."),
        confirmation,
    )
    forwarded = desk.next_to(ALICE, "paie")
    assert "Envoyé" not in text_of(forwarded)
    assert desk.ticket(number)["status"] == "in_progress"  # quoted ACCEPT ignored

    # The owner answers the user without a keyword: forwarded to the requester.
    desk.send(
        ALICE,
        f"Re: {forwarded.message['Subject']}",
        "I will come by at 2 pm.",
        forwarded,
    )
    assert "2 pm" in text_of(desk.next_to(MARIE, "2 pm"))

    # Resolve, refuse, resolve again, accept and rate.
    desk.send(ALICE, "Re: x", "RESOLVED\nJam removed.", forwarded)
    desk.next_to(ALICE)  # transcript
    assert "Jam removed" in text_of(desk.next_to(MARIE, "Jam removed"))
    assert desk.ticket(number)["status"] == "resolved"

    desk.send(MARIE, f"Re: [HD {number}]", "REFUSE still jammed")
    assert "still jammed" in text_of(desk.next_to(ALICE, "still jammed"))
    assert desk.ticket(number)["status"] == "in_progress"

    desk.send(ALICE, f"Re: [HD {number}]", "RESOLU\nRouleau remplacé.")
    desk.next_to(MARIE, "Rouleau")
    desk.send(MARIE, f"Re: [HD {number}]", "ACCEPT\nRATE 5 great service")
    desk.next_to(ALICE, "accepted")

    ticket = desk.ticket(number)
    assert ticket["status"] == "closed"
    assert ticket["close_reason"] == "accepted"
    assert ticket["closed_at"] is not None
    assert ticket["rating"] == {"score": 5, "comment": "great service"}
    kinds = [e["kind"] for e in ticket["events"] if e["kind"] != "notified"]
    assert kinds == [
        "created",
        "claimed",
        "call",
        "comment",
        "comment",
        "resolved",
        "refused",
        "resolved",
        "accepted",
        "rated",
    ]
    internal = {e["kind"]: e["internal"] for e in ticket["events"]}
    assert internal["call"] is True
    assert internal["resolved"] is False

    # A reply to the closed ticket does not reopen it.
    desk.send(MARIE, f"Re: [HD {number}]", "REFUSE it broke again")
    desk.next_to(MARIE, "new")
    assert desk.ticket(number)["status"] == "closed"


def test_refused_commands_change_nothing(desk: Desk) -> None:
    number, _, announcement = open_ticket(desk)
    desk.send(ALICE, "Re: x", "RESOLVE\nFixed it", announcement)
    transcript = text_of(desk.next_to(ALICE))
    assert "RESOLVED" in transcript  # did you mean …
    desk.send(ALICE, "Re: x", "CALL", announcement)  # not claimed yet
    assert desk.next_to(ALICE)
    desk.send(MARIE, f"Re: [HD {number}]", "RATE 9")
    assert desk.next_to(MARIE)
    desk.send(ALICE, "Re: x", "CLAIM", announcement)
    desk.next_to(ALICE)
    desk.send(BOB, "Re: x", "CLAIM", announcement)  # too late
    assert ALICE in text_of(desk.next_to(BOB))
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("in_progress", ALICE)
    assert ticket["rating"] is None
    refused = [e for e in ticket["events"] if e["kind"] == "command_refused"]
    assert len(refused) == 4


def test_supervisor_assigns_and_requester_cancels(desk: Desk) -> None:
    number, _, _ = open_ticket(desk)
    desk.send(CHEF, f"Re: [HD {number}]", f"ASSIGN {BOB}")
    desk.next_to(CHEF)
    assert number in str(desk.next_to(BOB).message["Subject"])
    assert desk.ticket(number)["owner"] == BOB
    desk.send(MARIE, f"Re: [HD {number}]", "CANCEL\nSolved by itself.")
    assert "Solved by itself" in text_of(desk.next_to(BOB, "Solved"))
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "cancelled")


def test_stranger_reply_stays_internal(desk: Desk) -> None:
    number, confirmation, _ = open_ticket(desk)
    # Eve answers the confirmation Marie forwarded her: the mail is the ticket's.
    desk.send("eve@example.com", "Re: printer", "Please send me the logs", confirmation)
    desk.send(ALICE, f"Re: [HD {number}]", "NOTE checked the spooler")
    desk.next_to(ALICE)  # transcript of the note
    events = desk.ticket(number)["events"]
    comment = next(e for e in events if e["kind"] == "comment")
    assert (comment["actor"], comment["internal"]) == ("eve@example.com", True)
    note = next(e for e in events if e["kind"] == "note")
    assert note["internal"] is True
    assert not [
        m for m in desk.sink.messages if MARIE in m.rcpt_tos and "logs" in text_of(m)
    ]


def test_help_and_list(desk: Desk) -> None:
    number, _, _ = open_ticket(desk)
    desk.send(MARIE, "HELP", "")
    assert "ACCEPT" in text_of(desk.next_to(MARIE))
    desk.send(ALICE, "help", "")
    assert "CLAIM" in text_of(desk.next_to(ALICE))
    desk.send(CHEF, "LIST", "")
    assert number in text_of(desk.next_to(CHEF))
    assert len(desk.daemon.maild("tickets", "list", "--json")) == 1
