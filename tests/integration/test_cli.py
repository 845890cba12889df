"""The command line as an admin uses it: check-config, replay, tickets, stats."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.daemon import run_maild, write_config

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
