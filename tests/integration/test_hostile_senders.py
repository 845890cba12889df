"""Spoofed senders, outsiders and robots, through the real daemon's SMTP intake.

The daemon trusts `mx.example.com`'s Authentication-Results; a command whose
mail that server did not pass changes nothing and is refused in the
transcript. Outsiders' mail reaches no one outside the staff. An
out-of-office responder answering maild's mail gets no answer, and a robot
no check recognises is stopped by the ticket's answer ladder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_workflow import POOL, Desk, open_ticket, text_of
from tests.support.daemon import Daemon, start_daemon
from tests.support.smtp_sink import ReceivedMail, SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MARIE = "marie@example.com"
ALICE = "alice@example.com"
CHEF = "chef@example.com"
OUTSIDER = "noreply@accounts.thirdparty.example"
EXTRA = """
[security]
trusted_authserv_ids = ["mx.example.com"]

[limits]
auto_answers_per_hour = 100
auto_answers_per_day = 100
ticket_answers_per_10_minutes = 3
"""
PASS = "mx.example.com; dmarc=pass (p=reject) header.from=example.com"
FAIL = "mx.example.com; dmarc=fail (p=reject) header.from=example.com"
FORGED = "evil.example.net; dmarc=pass header.from=example.com"


@pytest.fixture
def daemon(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Daemon]:
    handle = start_daemon(tmp_path, smtp_sink.port, language="en", extra=EXTRA)
    try:
        yield handle
    finally:
        assert handle.stop() == 0, handle.log.read_text()


@pytest.fixture
def desk(daemon: Daemon, smtp_sink: SmtpSink) -> Desk:
    return Desk(daemon, smtp_sink)


def open_verified(desk: Desk) -> tuple[str, ReceivedMail, ReceivedMail]:
    """Marie's ticket, her mail passed by the trusted server."""
    return open_ticket(desk, Authentication_Results=PASS)


def events(desk: Desk, number: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in desk.ticket(number)["events"] if e["kind"] == kind]


def notices_to(desk: Desk, number: str, address: str) -> list[str]:
    return [e["text"] for e in events(desk, number, "notified") if address in e["text"]]


def test_a_spoofed_new_ticket_is_opened_and_only_staff_hear_of_it(desk: Desk) -> None:
    body = "Application: Payroll\n\nPlease send me the payslips of the team."
    desk.send(MARIE, "Payslips", body, Authentication_Results=FAIL)
    announcement = desk.next_to(POOL)
    assert "Sender not verified" in text_of(announcement)
    assert "dmarc=fail" in text_of(announcement)
    (listed,) = desk.daemon.maild("tickets", "list", "--json")
    ticket = desk.ticket(listed["number"])
    assert ticket["unverified_sender"] == "dmarc=fail"
    assert not [m for m in desk.sink.messages if MARIE in m.rcpt_tos]

    # A technician takes it from a verified mail: the requester is told again.
    desk.send(
        ALICE,
        f"Re: {announcement.message['Subject']}",
        "CLAIM",
        announcement,
        Authentication_Results=PASS,
    )
    claimed = desk.next_to(MARIE)
    assert ALICE in text_of(claimed)
    assert desk.ticket(listed["number"])["unverified_sender"] is None


@pytest.mark.parametrize("header", [FAIL, FORGED], ids=["dmarc_fail", "forged_ar"])
def test_a_spoofed_command_changes_nothing_and_is_refused(
    desk: Desk, header: str
) -> None:
    number, _, announcement = open_verified(desk)
    desk.send(
        ALICE,
        f"Re: {announcement.message['Subject']}",
        "CLAIM\nRESOLVED Fixed, log in at http://phish.example/login",
        announcement,
        Authentication_Results=header,
    )
    transcript = text_of(desk.next_to(ALICE))
    assert "could not confirm" in transcript
    assert "phish.example" not in transcript  # the spoofer's text is not sent
    ticket = desk.ticket(number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)
    refused = events(desk, number, "command_refused")
    assert [e["internal"] for e in refused] == [True, True]
    assert all("unverified_sender" in e["text"] for e in refused)

    # The same command, passed by the trusted server, counts.
    desk.send(
        ALICE,
        f"Re: {announcement.message['Subject']}",
        "CLAIM",
        announcement,
        Authentication_Results=PASS,
    )
    assert "done" in text_of(desk.next_to(ALICE)).lower()
    assert desk.ticket(number)["owner"] == ALICE


def test_the_ticket_trick(desk: Desk) -> None:
    number, _, _ = open_verified(desk)
    sent_before = len(desk.sink.messages)

    # A third-party service's verification mail, sent to the helpdesk address.
    desk.daemon.send(
        b"From: Thirdparty <noreply@accounts.thirdparty.example>\r\n"
        b"To: helpdesk@example.com\r\nSubject: Verify your email address\r\n"
        b"Message-ID: <verify-1@accounts.thirdparty.example>\r\n\r\n"
        b"Your code is 493021.\r\n",
        sender=OUTSIDER,
    )
    quarantined = wait_until(lambda: desk.daemon.maild("quarantine", "list", "--json"))
    assert quarantined[0]["reason"].startswith("outsider")

    # The same service, with the subject carrying a real ticket's tag: a
    # guessed number names no ticket (need to know), so it is an outsider's.
    desk.daemon.send(
        f"From: noreply@accounts.thirdparty.example\r\n"
        f"To: helpdesk@example.com\r\nSubject: [HD {number}] Verify your email\r\n"
        f"Message-ID: <verify-2@accounts.thirdparty.example>\r\n\r\n"
        f"RESOLVED\r\nYour code is 493021.\r\n".encode(),
        sender=OUTSIDER,
    )
    quarantined = wait_until(
        lambda: [
            q
            for q in desk.daemon.maild("quarantine", "list", "--json")
            if q["reason"].startswith("outsider")
        ][1:]
    )
    assert quarantined
    assert events(desk, number, "command_refused") == []
    assert desk.ticket(number)["status"] == "new"
    # Nothing at all went out: not to the outsider, not to the requester.
    desk.send(MARIE, f"Re: [HD {number}]", "RATE 5", Authentication_Results=PASS)
    desk.next_to(MARIE)  # a later answer, to be sure everything before was sent
    later = desk.sink.messages[sent_before:]
    assert [tuple(m.rcpt_tos) for m in later] == [(MARIE,)]
    assert not any("493021" in text_of(m) for m in later)


def ooo_reply(
    desk: Desk, to: ReceivedMail, subject: str, body: str, **headers: str
) -> None:
    desk.send(MARIE, f"{subject}{to.message['Subject']}", body, to, **headers)


def test_an_out_of_office_responder_gets_no_answer(desk: Desk) -> None:
    number, confirmation, announcement = open_verified(desk)
    desk.send(
        ALICE,
        "Re: x",
        "CLAIM\nRESOLVED Jam removed",
        announcement,
        Authentication_Results=PASS,
    )
    resolved = desk.next_to(MARIE, "Jam removed")
    # Exchange without RFC 3834 headers, Gmail with them, a bare template reply.
    ooo_reply(
        desk,
        resolved,
        "Réponse automatique\u00a0: ",
        "Je suis absente du bureau jusqu'au 7 décembre.\nREFUSE",
    )
    ooo_reply(
        desk,
        confirmation,
        "",
        "I'm on vacation until January 4th.",
        Auto_Submitted="auto-replied",
    )
    ooo_reply(desk, resolved, "Re: ", "Je suis absente jusqu'au 4 janvier.")
    auto = wait_until(lambda: len(events(desk, number, "auto_reply")) == 3 or None)
    assert auto
    ticket = desk.ticket(number)
    assert ticket["status"] == "resolved"  # not reopened, nothing refused
    assert not events(desk, number, "command_refused")
    assert not events(desk, number, "comment")
    assert len(notices_to(desk, number, MARIE)) == 3  # confirmation, claimed, resolved


def test_a_robot_no_check_recognises_is_stopped_by_the_ladder(desk: Desk) -> None:
    number, confirmation, _ = open_verified(desk)  # answer 1 on the ladder
    desk.send(
        CHEF, f"Re: [HD {number}]", "CANCEL duplicate", Authentication_Results=PASS
    )
    wait_until(lambda: desk.ticket(number)["status"] == "closed")
    last = confirmation
    for answered in range(1, 4):  # the robot answers every mail it gets
        desk.send(MARIE, f"Re: {last.message['Subject']}", "Thank you, noted.", last)
        wait_until(lambda n=answered: len(events(desk, number, "comment")) == n)
        if answered < 3:  # the third answer is held: no more mail
            last = desk.next_to(MARIE, "closed")
    closed_notices = [t for t in notices_to(desk, number, MARIE) if "closed" in t]
    assert len(closed_notices) == 2  # then the ladder held the rest
    assert "ticket's answer ladder" in desk.daemon.log.read_text()
