"""The command line as an admin uses it: check-config, replay, tickets, stats."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import ROOT, run_maild, start_daemon, write_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
NEW_TICKET = (
    b"From: Jean Dupont <jean.dupont@example.com>\r\n"
    b"To: helpdesk@example.com\r\n"
    b"Subject: VPN impossible\r\n"
    b"Message-ID: <vpn-1@client.example.com>\r\n"
    b"Importance: high\r\n"
    b"\r\n"
    b"Application: VPN\r\n"
    b"Phone: +33 1 02 03 04 05\r\n"
    b"\r\n"
    b"Le VPN refuse ma connexion depuis ce matin.\r\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path, _ = write_config(tmp_path, sink_port=None, language="en")
    return path


def test_check_config_ok_and_bad_key(config: Path, tmp_path: Path) -> None:
    done = run_maild(config, "check-config")
    assert done.returncode == 0
    assert "OK" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        config.read_text().replace('language = "en"', 'language = "en"\ncolour = 1')
    )
    done = run_maild(bad, "check-config")
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "maild: configuration error: helpdesk.colour: unknown key"
    )


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    done = run_maild(tmp_path / "absent.toml", "check-config")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1


def test_run_with_its_port_taken_stops_at_once_naming_the_key(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, sink_port=None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run_maild(config, "run")  # it used to hang, its sender waited
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "maild: configuration error: smtp_intake.port: "
        f"cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_replay_then_list_show_and_stats(config: Path, tmp_path: Path) -> None:
    mail = tmp_path / "vpn.eml"
    mail.write_bytes(NEW_TICKET)
    done = run_maild(config, "replay", str(mail))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"

    (ticket,) = json.loads(run_maild(config, "tickets", "list", "--json").stdout)
    assert ticket["urgency"] == "high"  # Importance: high
    assert ticket["application"] == "VPN"
    assert ticket["phone"] == "+33 1 02 03 04 05"
    assert (
        json.loads(
            run_maild(config, "tickets", "list", "--status", "closed", "--json").stdout
        )
        == []
    )

    shown = json.loads(
        run_maild(config, "tickets", "show", ticket["number"], "--json").stdout
    )
    assert shown["events"][0]["kind"] == "created"
    assert shown["events"][0]["message_id"] == "vpn-1@client.example.com"
    assert shown["events"][0]["actor"] == "jean.dupont@example.com"

    table = run_maild(config, "tickets", "list")
    assert ticket["number"] in table.stdout

    # Outbound mail is kept as .eml files when no relay is configured.
    kept = list((config.parent / "var" / "outbox").glob("*.eml"))
    assert len(kept) == 2

    stats = json.loads(run_maild(config, "stats", "--json").stdout)
    assert stats["backlog"]["new"] == 1
    assert stats["outbox"] == {"pending": 0, "failed": 0}
    assert stats["quarantine"] == 0
    assert stats["callback"]["high"]["pending"] == 1

    # The same file again changes nothing.
    assert run_maild(config, "replay", str(mail)).stdout.strip() == "done"
    assert len(json.loads(run_maild(config, "tickets", "list", "--json").stdout)) == 1


def test_show_unknown_ticket_fails_with_a_reason(config: Path) -> None:
    done = run_maild(config, "tickets", "show", "I000000_0001")
    assert done.returncode == 1
    assert "no ticket I000000_0001" in done.stderr


def test_staff_added_from_the_cli_can_work_tickets(
    config: Path, tmp_path: Path
) -> None:
    done = run_maild(config, "staff", "add", "Dave@Example.com", "--role", "technician")
    assert done.returncode == 0, done.stderr
    staff = json.loads(run_maild(config, "staff", "list", "--json").stdout)
    assert {
        "address": "dave@example.com",
        "role": "technician",
        "source": "cli",
    } in staff
    assert {
        "address": "chef@example.com",
        "role": "supervisor",
        "source": "config",
    } in staff

    mail = tmp_path / "new.eml"
    mail.write_bytes(NEW_TICKET)
    run_maild(config, "replay", str(mail))
    (ticket,) = json.loads(run_maild(config, "tickets", "list", "--json").stdout)
    claim = tmp_path / "claim.eml"
    claim.write_bytes(
        b"From: dave@example.com\r\nTo: helpdesk@example.com\r\n"
        b"Subject: Re: [HD " + ticket["number"].encode() + b"]\r\n"
        b"Message-ID: <claim-dave@client.example.com>\r\n\r\nCLAIM\r\n"
    )
    run_maild(config, "replay", str(claim))
    (ticket,) = json.loads(run_maild(config, "tickets", "list", "--json").stdout)
    assert ticket["owner"] == "dave@example.com"

    assert run_maild(config, "staff", "remove", "dave@example.com").returncode == 0
    gone = run_maild(config, "staff", "remove", "dave@example.com")
    assert gone.returncode == 1
    assert "not added with the CLI" in gone.stderr
    for wrong in ("not-an-address", "Dave <dave@example.com>", "dave@localhost"):
        bad = run_maild(config, "staff", "add", wrong, "--role", "technician")
        assert bad.returncode == 1, wrong
        assert "is not a mail address" in bad.stderr


# A desk whose database a daemon made, read by the command line: a ticket
# whose call-back is missed at once (high: 1 s, business hours all day), a
# ticket with a long description (what a closed pipe cuts short), a claim, a
# HELP, an auto-reply, a bounce of a confirmation, an outsider's mail.
SLA_AT_ONCE = """
[sla]
callback = { high = "1s", medium = "8h", low = "8h" }
business_hours = "00:00-23:59"
business_days = "mon-sun"
holidays = ""
"""
LONG_LINE = "Rien ne s'affiche sur l'écran depuis la mise à jour de ce matin.\r\n"
SCREEN = (
    "From: Marie Curie <marie@example.com>\r\n"
    "To: helpdesk@example.com\r\n"
    "Subject: =?utf-8?q?=C3=89cran_noir_au_bureau_12?=\r\n"
    "Message-ID: <screen-1@client.example.com>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n" + LONG_LINE * 5000  # about 340 KB: more than a pipe holds
).encode()


@dataclass(frozen=True)
class MadeDesk:
    config: Path
    vpn: str  # Jean's ticket, high urgency, claimed by Alice: breached
    screen: str  # Marie's ticket, its description long
    confirmation: str  # Message-ID of the confirmation to Jean, bounced


def mail(
    sender: str, subject: str, message_id: str, *headers: str, body: str = "Bonjour."
) -> bytes:
    lines = [
        f"From: {sender}",
        "To: helpdesk@example.com",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        *headers,
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> MadeDesk:
    """The daemon is stopped before the tests: the command line reads alone."""
    daemon = start_daemon(
        tmp_path_factory.mktemp("desk"), None, language="en", extra=SLA_AT_ONCE
    )
    try:
        daemon.send(NEW_TICKET, "jean.dupont@example.com")
        daemon.send(SCREEN)
        vpn, screen = (t["number"] for t in daemon.maild("tickets", "list", "--json"))
        events = daemon.maild("tickets", "show", vpn, "--json")["events"]
        (confirmation,) = [
            e["message_id"]
            for e in events
            if e["kind"] == "notified" and e["text"].startswith("confirmation")
        ]
        alice = "alice@example.com"
        claim = mail(alice, f"Re: [HD {vpn}]", "claim-1@example.com", body="CLAIM")
        daemon.send(claim, alice)
        daemon.send(mail("marie@example.com", "HELP", "help-1@example.com"))
        daemon.send(
            mail(
                "marie@example.com",
                "Absent du bureau",
                "ooo-1@example.com",
                "Auto-Submitted: auto-replied",
            )
        )
        dsn = (FIXTURES / "bounce_dsn.eml").read_bytes().replace(b"\n", b"\r\n")
        named = b"maild.I261130_0001.abcdef@helpdesk.example.com"
        daemon.send(dsn.replace(named, confirmation.encode()), "")
        spammer = "spam@evil.example.org"
        daemon.send(mail(spammer, "Win big", "spam-1@evil.example.org"), spammer)
    finally:
        assert daemon.stop() == 0
    return MadeDesk(daemon.config, vpn, screen, confirmation)


def cli_json(desk: MadeDesk, *args: str) -> Any:
    done = run_maild(desk.config, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


MAIL_KEYS = {
    "id",
    "received_at",
    "sender",
    "subject",
    "message_id",
    "outcome",
    "reason",
    "ticket",
}
OUTSIDER = "outsider: sender spam@evil.example.org is not in an accepted domain"


def test_mails_list_says_what_became_of_every_mail(desk: MadeDesk) -> None:
    mails = cli_json(desk, "mails", "list")
    assert all(set(m) == MAIL_KEYS for m in mails)
    fates = [(m["message_id"], m["outcome"], m["ticket"]) for m in mails]
    assert fates == [
        ("vpn-1@client.example.com", "ticket", desk.vpn),
        ("screen-1@client.example.com", "ticket", desk.screen),
        ("claim-1@example.com", "reply", desk.vpn),
        ("help-1@example.com", "reply", None),  # HELP: answered, no ticket
        ("ooo-1@example.com", "ignored", None),
        ("20261130082000.ABC123@mail.example.com", "ignored", desk.vpn),
        ("spam-1@evil.example.org", "quarantined", None),
    ]
    reasons = [m["reason"] for m in mails]
    assert reasons[:4] == [None] * 4
    assert reasons[4] == "auto_reply: Auto-Submitted: auto-replied"
    assert reasons[5] == (
        "bounce: delivery status report: nobody@example.com: 550 5.1.1 User unknown"
        f" (notification <{desk.confirmation}> marked failed)"
    )
    assert reasons[6] == OUTSIDER
    screen = mails[1]
    assert (screen["sender"], screen["subject"]) == (
        "marie@example.com",
        "Écran noir au bureau 12",
    )
    assert all(datetime.fromisoformat(m["received_at"]).tzinfo for m in mails)


def test_mails_list_filters_by_outcome_and_time(desk: MadeDesk) -> None:
    every = cli_json(desk, "mails", "list")
    for outcome in ("ticket", "reply", "ignored", "quarantined", "pending"):
        only = cli_json(desk, "mails", "list", "--outcome", outcome)
        assert only == [m for m in every if m["outcome"] == outcome], outcome
    assert cli_json(desk, "mails", "list", "--since", "1h") == every
    assert cli_json(desk, "mails", "list", "--since", "2999-01-01") == []
    since = every[-1]["received_at"]
    assert cli_json(desk, "mails", "list", "--since", since) == every[-1:]


def test_mails_list_and_show_for_a_person(desk: MadeDesk) -> None:
    table = run_maild(desk.config, "mails", "list").stdout.splitlines()
    assert table[0].split() == [
        "ID",
        "RECEIVED",
        "OUTCOME",
        "TICKET",
        "SENDER",
        "SUBJECT",
        "REASON",
    ]
    assert len(table) == 8
    assert "quarantined" in table[-1]
    assert OUTSIDER in table[-1]
    shown = run_maild(desk.config, "mails", "show", "6")
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines())
    assert fields["outcome"] == "ignored"
    assert fields["ticket"] == desk.vpn
    assert fields["ticket_subject"] == "VPN impossible"
    assert fields["blob_kept"] == "yes"
    assert Path(fields["blob"]).is_file()


def test_mails_show_gives_the_bytes_and_the_ticket(desk: MadeDesk) -> None:
    bounce = cli_json(desk, "mails", "show", "6")
    assert {k: bounce[k] for k in MAIL_KEYS} == cli_json(desk, "mails", "list")[5]
    assert (bounce["state"], bounce["ticket_status"]) == ("ignored", "in_progress")
    blob = Path(bounce["blob"])
    assert blob.is_relative_to(desk.config.parent / "var" / "blobs")
    assert b"Undelivered Mail Returned to Sender" in blob.read_bytes()
    assert [e["kind"] for e in bounce["events"]] == ["bounce"]
    claim = cli_json(desk, "mails", "show", "3")
    assert claim["summary"] == f"reply on {desk.vpn}: 1 command(s) done, 0 refused"
    assert [e["kind"] for e in claim["events"]] == ["claimed"]


def test_cli_exit_statuses(desk: MadeDesk, tmp_path: Path) -> None:
    missing = run_maild(desk.config, "mails", "show", "999")
    assert (missing.returncode, missing.stderr) == (1, "maild: no mail 999\n")
    for usage in (
        ("mails", "list", "--outcome", "lost"),
        ("mails", "show", "seven"),
        ("tickets", "list", "--since", "last week"),
        ("tickets", "frobnicate"),
    ):
        done = run_maild(desk.config, *usage)
        assert done.returncode == 2, usage
        assert "usage: maild" in done.stderr
    assert run_maild(tmp_path / "absent.toml", "mails", "list").returncode == 2


def numbers(desk: MadeDesk, *filters: str) -> list[str]:
    return [t["number"] for t in cli_json(desk, "tickets", "list", *filters)]


def test_tickets_list_filters(desk: MadeDesk) -> None:
    vpn, screen = desk.vpn, desk.screen
    assert numbers(desk) == [vpn, screen]
    assert numbers(desk, "--status", "new") == [screen]
    assert numbers(desk, "--owner", "Alice@Example.com") == [vpn]
    assert numbers(desk, "--status", "new", "--owner", "alice@example.com") == []
    assert numbers(desk, "--requester", "marie@example.com") == [screen]
    assert numbers(desk, "--since", "1h") == [vpn, screen]
    assert numbers(desk, "--since", "2999-01-01T00:00") == []
    assert numbers(desk, "--search", "ÉCRAN NOIR") == [screen]  # the subject
    assert numbers(desk, "--search", "mise À JOUR") == [screen]  # the description
    assert numbers(desk, "--search", "vpn") == [vpn]
    assert numbers(desk, "--search", "%") == []  # a character, not a wildcard
    # High urgency called back within 1 s: missed by now, and not the other.
    assert wait_until(lambda: numbers(desk, "--breached") == [vpn], 90, "breach")


def test_tickets_show_prints_every_field_the_json_has(desk: MadeDesk) -> None:
    ticket = cli_json(desk, "tickets", "show", desk.vpn)
    done = run_maild(desk.config, "tickets", "show", desk.vpn)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    named = {line.split()[0] for line in lines if line and not line[0].isspace()}
    assert set(ticket) - {"description", "events"} <= named
    fields = {
        line.split(None, 1)[0]: line.split(None, 1)[1]
        for line in lines[: len(ticket) - 2]
    }
    assert fields["application"] == "VPN"
    assert fields["phone"] == "+33 1 02 03 04 05"
    assert fields["urgency"] == "high"
    assert fields["owner"] == "alice@example.com"
    assert fields["requester"] == "Jean Dupont <jean.dupont@example.com>"
    assert "Le VPN refuse ma connexion depuis ce matin." in lines
    for event in ticket["events"]:
        assert any(event["kind"] in line for line in lines), event["kind"]


CLOSED_PIPE = [
    ("tickets", "show", "SCREEN", "--json"),
    ("tickets", "show", "SCREEN"),
    ("tickets", "list"),
    ("tickets", "list", "--json"),
    ("mails", "list"),
    ("mails", "list", "--json"),
]


@pytest.mark.parametrize("args", CLOSED_PIPE, ids=" ".join)
def test_a_reader_that_stops_reading_ends_it_quietly(
    desk: MadeDesk, args: tuple[str, ...]
) -> None:
    args = tuple(desk.screen if a == "SCREEN" else a for a in args)
    maild = [sys.executable, "-m", "maild", "--config", str(desk.config), *args]
    with subprocess.Popen(
        maild, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()  # the reader is gone before the first line
        stderr = process.stderr.read().decode()
        status = process.wait(60)
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr
    assert status == 0


def test_head_of_a_long_ticket_through_a_real_pipe(desk: MadeDesk) -> None:
    maild = shlex.join([sys.executable, "-m", "maild", "--config", str(desk.config)])
    for args in (f"tickets show {desk.screen} --json", "tickets list"):
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {maild} {args} | head -1"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in done.stderr, args
        assert done.returncode == 0, (args, done.stderr)
        assert len(done.stdout.splitlines()) == 1
