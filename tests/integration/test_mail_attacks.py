"""Issue 13: attacks through mail alone, each reproduced through the real daemon's
SMTP intake.

Each test is named after the issue's numbered item it reproduces. The daemon
answers 250 only once a mail's effect is committed, so the ticket can be read
as soon as `send` returns; what it queued has been delivered once the outbox
is empty (`settle`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_hostile_senders import EXTRA, events, open_verified
from tests.integration.test_workflow import (
    ALICE,
    CHEF,
    MARIE,
    POOL,
    Desk,
    mail,
    open_ticket,
    text_of,
)
from tests.support.daemon import Daemon, run_maild, start_daemon, write_config
from tests.support.smtp_sink import ReceivedMail, SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HELPDESK = "helpdesk@example.com"
STRANGER = "someone@example.com"
HR_SUBJECT = "HR complaint about manager X"
SECRETS = ("HR complaint", "manager X")
CAPPED = "[limits]\nnew_tickets_per_hour = 3\n"
Fields = Sequence[tuple[str, str]]


@pytest.fixture
def start(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Callable[[str], Desk]]:
    """Start the daemon with extra TOML in its configuration; stop it at the end."""
    started: list[Daemon] = []

    def start_with(extra: str) -> Desk:
        daemon = start_daemon(tmp_path, smtp_sink.port, language="en", extra=extra)
        started.append(daemon)
        return Desk(daemon, smtp_sink)

    yield start_with
    for daemon in started:
        assert daemon.stop() == 0, daemon.log.read_text()


@pytest.fixture
def desk(start: Callable[[str], Desk]) -> Desk:
    return start("")


def post(desk: Desk, sender: str, raw: bytes) -> str:
    """Send raw bytes to the intake; return their Message-ID once committed."""
    desk.daemon.send(raw, sender=sender)
    return str(BytesHeaderParser().parsebytes(raw)["Message-ID"])


def say(
    desk: Desk,
    sender: str,
    subject: str,
    body: str,
    reply_to: ReceivedMail | None = None,
    **headers: str,
) -> str:
    return post(desk, sender, mail(sender, subject, body, reply_to, **headers))


def _bare(message_id: object) -> str:
    return str(message_id or "").strip().strip("<>")


def _answers(address: str, message_id: str) -> Callable[[ReceivedMail], bool]:
    def fits(m: ReceivedMail) -> bool:
        parent = _bare(m.message["In-Reply-To"])
        return address in m.rcpt_tos and parent == _bare(message_id)

    return fits


def answer(desk: Desk, address: str, message_id: str) -> ReceivedMail:
    """Wait for what maild sends address in answer to the mail message_id."""
    return desk.sink.wait_for(_answers(address, message_id), timeout=30)[0]


def settle(desk: Desk) -> list[ReceivedMail]:
    """Wait until everything queued so far was delivered; return all delivered."""
    wait_until(lambda: desk.daemon.maild("stats", "--json")["outbox"]["pending"] == 0)
    return desk.sink.messages


def mail_to(desk: Desk, address: str) -> list[ReceivedMail]:
    return [m for m in settle(desk) if address in m.rcpt_tos]


def readable(m: ReceivedMail) -> str:
    """The subject and every text part, decoded: all a reader can see."""
    texts = [
        part.get_content()
        for part in m.message.walk()
        if part.get_content_maintype() == "text"
    ]
    return "\n".join([str(m.message["Subject"] or ""), *texts])


def leaked(mails: list[ReceivedMail]) -> list[str]:
    return [readable(m) for m in mails if any(s in readable(m) for s in SECRETS)]


def refusal(transcript: str) -> str:
    """The reason a transcript gives after 'refused', to the end of its paragraph."""
    _, found, reason = transcript.replace("\r\n", "\n").partition("refused")
    assert found, transcript
    return reason.split("\n\n")[0]


def tickets_of(desk: Desk, address: str) -> list[dict[str, Any]]:
    every = desk.daemon.maild("tickets", "list", "--json")
    return [t for t in every if t["requester"]["address"] == address]


def raw_mail(fields: Fields, body: str) -> bytes:
    """A mail with exactly these header fields, in this order, and a text body."""
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("ascii")


def reply_fields(sender: str, answered: ReceivedMail, subject: str) -> Fields:
    parent = str(answered.message["Message-ID"])
    return (
        ("From", sender),
        ("To", HELPDESK),
        ("Subject", subject),
        ("Message-ID", make_msgid(domain="client.example.com")),
        ("In-Reply-To", parent),
        ("References", parent),
    )


def open_with(
    desk: Desk, subject: str, body: str, **headers: str
) -> tuple[str, ReceivedMail]:
    """Marie opens a ticket; return its number and her confirmation, once sent."""
    confirmation = answer(desk, MARIE, say(desk, MARIE, subject, body, None, **headers))
    settle(desk)
    number: str = desk.daemon.maild("tickets", "list", "--json")[-1]["number"]
    return number, confirmation


def close(desk: Desk, number: str) -> None:
    """Alice claims and resolves, Marie accepts: the ticket is closed."""
    say(desk, ALICE, f"Re: [HD {number}]", "CLAIM\nRESOLVED done")
    say(desk, MARIE, f"Re: [HD {number}]", "ACCEPT")
    assert desk.ticket(number)["status"] == "closed"


# 1. Forged Authentication-Results on a set-up that trusts mx.example.com.

REAL_AR = (
    "mx.example.com; spf=softfail smtp.mailfrom=mallory@evil.test;"
    " dmarc=none header.from=example.com"
)
HOP = (
    "from evil.test (evil.test [203.0.113.9]) by mx.example.com with ESMTP id 1;"
    " Sat, 05 Dec 2026 10:00:00 +0000"
)
DKIM_PASS = "mx.example.com; dkim=pass header.d=example.com"
AR = "Authentication-Results"
FORGERIES: dict[str, Fields] = {
    "encoded_authserv_id": (
        (AR, "=?us-ascii?q?mx.example.com?=; dkim=pass header.d=example.com"),
    ),
    "quoted_authserv_id": (
        (AR, '"mx.example.com"; dmarc=pass header.from=example.com'),
    ),
    "forged_field_below_the_hop": ((AR, REAL_AR), ("Received", HOP), (AR, DKIM_PASS)),
}


def reply_as_alice(
    desk: Desk, number: str, announcement: ReceivedMail, top: Fields, body: str
) -> str:
    fields = (*top, *reply_fields(ALICE, announcement, f"Re: [HD {number}]"))
    return post(desk, ALICE, raw_mail(fields, body))


@pytest.mark.parametrize("top", FORGERIES.values(), ids=FORGERIES.keys())
def test_1_forged_authentication_results_change_nothing(
    start: Callable[[str], Desk], top: Fields
) -> None:
    desk = start(EXTRA)
    number, _, announcement = open_verified(desk)
    reply_as_alice(desk, number, announcement, top, "CLAIM\nRESOLVED fixed (forged)")
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)
    refused = events(desk, number, "command_refused")
    assert len(refused) == 2
    assert all("unverified_sender" in e["text"] for e in refused), refused
    assert not [m for m in mail_to(desk, MARIE) if "forged" in readable(m)]


def test_1_control_the_trusted_server_s_own_top_field_counts(
    start: Callable[[str], Desk],
) -> None:
    desk = start(EXTRA)
    number, _, announcement = open_verified(desk)
    top = ((AR, DKIM_PASS), ("Received", HOP), (AR, REAL_AR))
    reply_as_alice(desk, number, announcement, top, "CLAIM")
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("in_progress", ALICE)


# 2. Percent hack and bang paths: addresses that Postfix may route outside.


def has_route(address: str) -> bool:
    return "%" in address or "!" in address


def test_2_routed_addresses_are_neither_watchers_nor_beneficiary(desk: Desk) -> None:
    number, _ = open_with(
        desk,
        "Printer broken",
        "Beneficiary: Bob <bob%evil.test@example.com>\n\nNothing prints.",
        Cc="evil%evil.test@example.com, evil.test!evil@example.com",
    )
    ticket = desk.ticket(number)
    assert ticket["watchers"] == []
    assert ticket["beneficiary"]["address"] == MARIE
    routed = [r for m in settle(desk) for r in m.rcpt_tos if has_route(r)]
    assert routed == []


def test_2_a_routed_sender_is_an_outsider(desk: Desk) -> None:
    mallory = "mallory%evil.test@example.com"
    sent = say(desk, mallory, "Invoice", "Please pay the invoice attached.")
    quarantined = desk.daemon.maild("quarantine", "list", "--json")
    assert [q["reason"].startswith("outsider") for q in quarantined] == [True]
    assert _bare(quarantined[0]["message_id"]) == _bare(sent)
    delivered = settle(desk)
    assert not [m for m in delivered if _answers(mallory, sent)(m)]
    assert not [r for m in delivered for r in m.rcpt_tos if has_route(r)]
    assert desk.daemon.maild("tickets", "list", "--json") == []


def test_2_assign_to_a_routed_address_is_refused(desk: Desk) -> None:
    number, _, _ = open_ticket(desk)
    sent = say(desk, CHEF, f"Re: [HD {number}]", "ASSIGN bob%evil.test@example.com")
    assert refusal(text_of(answer(desk, CHEF, sent)))
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)
    assert not [r for m in settle(desk) for r in m.rcpt_tos if has_route(r)]


def test_2_staff_add_refuses_a_routed_address(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, sink_port=None, language="en")

    def add(address: str) -> subprocess.CompletedProcess[str]:
        return run_maild(config, "staff", "add", "--role", "technician", address)

    assert add("carol@example.com").returncode == 0  # the command line is right
    done = add("x%evil.test@example.com")
    assert done.returncode != 0, done.stdout
    assert done.stderr.strip()
    staff = run_maild(config, "staff", "list", "--json").stdout
    assert "evil.test" not in staff


# 3. Need to know: who is not on a ticket learns nothing of it.


def stranger_claims(desk: Desk, confirmation: ReceivedMail) -> None:
    """Someone Marie's confirmation was forwarded to replies CLAIM to it."""
    sent = say(desk, STRANGER, "Re: your mail", "CLAIM", confirmation)
    assert "could not be applied" in text_of(answer(desk, STRANGER, sent))
    assert leaked(mail_to(desk, STRANGER)) == []


def test_3_a_ticket_number_in_a_new_mail_s_subject_reveals_nothing(
    desk: Desk,
) -> None:
    number, _ = open_with(desk, HR_SUBJECT, "Please call me.")
    enum = "enum+1@example.com"
    answer(desk, enum, say(desk, enum, f"Re: [HD {number}]", "CLAIM"))
    assert leaked(mail_to(desk, enum)) == []
    assert enum not in [e["actor"] for e in desk.ticket(number)["events"]]
    assert len(tickets_of(desk, enum)) == 1  # as if it named no ticket


def test_3_a_stranger_replying_to_a_forwarded_confirmation_learns_nothing(
    desk: Desk,
) -> None:
    number, confirmation = open_with(desk, HR_SUBJECT, "Please call me.")
    stranger_claims(desk, confirmation)
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)


def test_3_a_stranger_replying_to_a_closed_ticket_learns_nothing(
    desk: Desk,
) -> None:
    number, confirmation = open_with(desk, HR_SUBJECT, "Please call me.")
    close(desk, number)
    stranger_claims(desk, confirmation)
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("closed", ALICE)


# 4. RATE after closure, within rate_days_after_close.


def rate_after_accept(desk: Desk) -> tuple[str, str]:
    number, _, _ = open_ticket(desk)
    close(desk, number)
    return number, say(desk, MARIE, f"Re: [HD {number}]", "RATE 4 good job")


def test_4_rate_after_closure_is_applied(desk: Desk) -> None:
    number, sent = rate_after_accept(desk)
    ticket = desk.ticket(number)
    assert ticket["rating"] == {"score": 4, "comment": "good job"}
    assert events(desk, number, "rated")
    transcript = text_of(answer(desk, MARIE, sent)).lower()
    assert "done" in transcript
    assert "write a new" not in transcript


def test_4_rate_after_the_rating_period_is_not_applied(
    start: Callable[[str], Desk],
) -> None:
    desk = start("[retention]\nrate_days_after_close = 0\n")
    number, _ = rate_after_accept(desk)
    assert desk.ticket(number)["rating"] is None


# 5. A forwarded message is not new text.


def test_5_a_command_inside_a_forwarded_message_is_not_read(desk: Desk) -> None:
    number, _, announcement = open_ticket(desk)
    forwarded = EmailMessage()
    forwarded["From"] = ALICE
    forwarded["To"] = HELPDESK
    forwarded["Subject"] = "Printer broken"
    forwarded.set_content("CLAIM")
    reply = EmailMessage()
    for name, value in reply_fields(ALICE, announcement, f"Re: [HD {number}]"):
        reply[name] = value
    reply["MIME-Version"] = "1.0"
    reply.add_attachment(forwarded, disposition="inline")  # its only text
    sent = post(desk, ALICE, reply.as_bytes(policy=SMTP))
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)
    answers = [m for m in settle(desk) if _answers(ALICE, sent)(m)]
    assert not [m for m in answers if "done" in text_of(m).lower()]


# 6. No sender check out of the box; a cap on new tickets per sender.


def test_6_without_verification_the_daemon_warns(desk: Desk) -> None:
    open_ticket(desk)
    lines = desk.daemon.log.read_text().splitlines()
    assert [x for x in lines if "WARNING" in x and "From address alone" in x]


def test_6_new_tickets_per_sender_are_capped(start: Callable[[str], Desk]) -> None:
    desk = start(CAPPED)
    sent = [
        say(desk, MARIE, f"Printer {n} broken", "Nothing prints.") for n in range(5)
    ]
    for message_id in sent[:3]:
        answer(desk, MARIE, message_id)  # the three confirmations
    desk.sink.wait_for(
        lambda m: MARIE in m.rcpt_tos and "not opened as a ticket" in readable(m),
        timeout=30,
    )
    paul = "paul@example.com"  # a later mail: everything before it was handled
    answer(desk, paul, say(desk, paul, "Screen broken", "Black screen."))
    received = mail_to(desk, MARIE)
    assert len(tickets_of(desk, MARIE)) == 3
    held = [
        q
        for q in desk.daemon.maild("quarantine", "list", "--json")
        if "new_tickets_per_hour" in (q["reason"] or "")
    ]
    assert len(held) == 2
    notices = [m for m in received if "not opened as a ticket" in readable(m)]
    assert len(notices) == 1
    assert len(received) == 4  # three confirmations and that one notice


def test_6_staff_are_not_capped(start: Callable[[str], Desk]) -> None:
    desk = start(CAPPED)
    for n in range(5):
        say(desk, ALICE, f"Server {n} down", "No answer from it.")
    assert len(tickets_of(desk, ALICE)) == 5


# 7. Smaller: what ASSIGN names; the helpdesk never mails itself.


def test_7_an_assign_refusal_names_the_address(desk: Desk) -> None:
    number, _, _ = open_ticket(desk)
    sent = say(desk, CHEF, f"Re: [HD {number}]", f"ASSIGN {MARIE}")
    assert MARIE in refusal(text_of(answer(desk, CHEF, sent)))
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)


def test_7_the_pool_is_never_the_beneficiary(desk: Desk) -> None:
    body = f"Beneficiary: Pool <{POOL}>\n\nNothing prints."
    number, _ = open_with(desk, "Printer broken", body)
    assert desk.ticket(number)["beneficiary"]["address"] == MARIE


def test_7_the_helpdesk_s_own_addresses_are_never_watchers(desk: Desk) -> None:
    cc = f"{POOL}, {HELPDESK}"
    number, _ = open_with(desk, "Printer broken", "Nothing prints.", Cc=cc)
    assert desk.ticket(number)["watchers"] == []
