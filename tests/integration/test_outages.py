"""Outages and stops with the real daemon: the relay down or refusing, the
database restarted or locked, SIGTERM in a burst, and the quarantine commands.
Real Dovecot, SMTP sink, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from maild.adapters.database.engine import WRITE_OPTION
from maild.runtime.daemon import STOP_SECONDS
from tests.support.crash import (
    Database,
    Started,
    message_id,
    new_mail,
    to,
)
from tests.support.daemon import run_maild, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.postgres import PostgresServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DONE = "maild/done"


def test_relay_outage_delays_mail_and_loses_none(
    tmp_path: Path, smtp_sink: SmtpSink, started: Started, sqlite_db: Database
) -> None:
    smtp_sink.stop()  # the relay is down from the start
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    for n in range(5):
        daemon.send(new_mail(n), f"user{n}@example.com")
    wait_until(lambda: daemon.log.read_text().count("deferred") >= 3, 30, "retries")
    assert daemon.maild("stats", "--json")["outbox"] == {"pending": 10, "failed": 0}
    smtp_sink.start()
    wait_until(lambda: sqlite_db.all_sent(10), 60, "outbox delivered")
    assert daemon.maild("stats", "--json")["outbox"] == {"pending": 0, "failed": 0}
    assert daemon.stop() == 0, daemon.log.read_text()
    received = Counter(message_id(m.message) for m in smtp_sink.messages)
    assert set(received) == {row.message_id for row in sqlite_db.outbox()}
    assert max(row.attempts for row in sqlite_db.outbox()) >= 2  # retried
    for n in range(5):
        assert len([m for m in smtp_sink.messages if to(f"user{n}@example.com")(m)])


def test_relay_refusal_is_recorded_and_reported_without_a_loop(
    tmp_path: Path, smtp_sink: SmtpSink, started: Started, sqlite_db: Database
) -> None:
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    smtp_sink.refuse("user1@example.com", 550)
    daemon.send(new_mail(1), "user1@example.com")
    (report,) = smtp_sink.wait_for(to("chef@example.com"), timeout=30)
    assert "Message non remis" in str(report.message["Subject"])
    assert "550" in report.message.get_body(("plain",)).get_content()
    # The report of a failed report is not sent: no loop.
    smtp_sink.refuse("chef@example.com", 550)
    smtp_sink.refuse("user2@example.com", 550)
    daemon.send(new_mail(2), "user2@example.com")
    wait_until(lambda: len(sqlite_db.outbox()) == 6, 30, "report queued")
    wait_until(lambda: _none_pending(sqlite_db), 30, "outbox settled")
    assert daemon.maild("stats", "--json")["outbox"] == {"pending": 0, "failed": 3}
    (first, second) = daemon.maild("tickets", "list", "--json")
    shown = daemon.maild("tickets", "show", first["number"], "--json")
    (bounce,) = [e for e in shown["events"] if e["kind"] == "bounce"]
    assert bounce["text"].startswith("delivery failed: ")
    assert "user1@example.com: 550" in bounce["text"]
    assert (bounce["actor"], bounce["internal"]) == ("maild", True)
    shown = daemon.maild("tickets", "show", second["number"], "--json")
    assert len([e for e in shown["events"] if e["kind"] == "bounce"]) == 2
    assert daemon.stop() == 0, daemon.log.read_text()
    assert len(smtp_sink.messages) == 3  # two announcements and one report


@pytest.mark.postgres
def test_database_restart_loses_nothing_and_costs_no_attempt(
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    postgres_server: PostgresServer,
    fresh_postgres_db: str,
    started: Started,
) -> None:
    server, url = clean_mailbox, fresh_postgres_db
    db = Database(url)
    locker = create_engine(url)
    try:
        daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, url)
        server.append(HELPDESK, new_mail(1))
        smtp_sink.wait_for(to("user1@example.com"), timeout=30)
        # Mail 2 is registered, then waits for the ticket counters when the
        # server goes down; mail 3 arrives while it is down.
        conn = locker.connect()
        conn.begin()
        conn.execute(text("LOCK TABLE counters IN EXCLUSIVE MODE"))
        server.append(HELPDESK, new_mail(2))
        wait_until(lambda: db.attempts() == [1, 1], 30, "mail 2 registered")
        postgres_server.stop_server()
        try:
            server.append(HELPDESK, new_mail(3))
            # The mail in hand is kept in the inbox; then the imap role's
            # lease, which only the database can renew, runs out: the intake
            # waits for the database rather than trying mail it cannot keep.
            wait_until(
                lambda: "role imap given up" in daemon.log.read_text(),
                30,
                "the intake stopped while the database is down",
            )
            assert "kept in inbox" in daemon.log.read_text()
            assert len(server.list_uids(HELPDESK)) == 2
        finally:
            postgres_server.start_server()
            with suppress(DBAPIError):
                conn.close()  # its server session ended with the outage
        wait_until(lambda: not server.list_uids(HELPDESK), 90, "inbox empty")
        wait_until(lambda: db.all_sent(6), 60, "outbox delivered")
        assert daemon.stop() == 0, daemon.log.read_text()
        assert db.attempts() == [1, 1, 1]  # the outage cost no attempt
        assert [row.state for row in db.mails()] == ["done"] * 3
        assert len(db.tickets()) == 3
        for n in (1, 2, 3):
            assert len([m for m in smtp_sink.messages if to(f"user{n}@example.com")(m)])
    finally:
        locker.dispose()
        db.close()


def test_sqlite_busy_waits_instead_of_failing(
    tmp_path: Path, smtp_sink: SmtpSink, started: Started, sqlite_db: Database
) -> None:
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    with sqlite_db.engine.connect() as conn:
        writer = conn.execution_options(**{WRITE_OPTION: True})
        lock = writer.begin()  # BEGIN IMMEDIATE: another writer holds the lock
        sender = threading.Thread(
            target=daemon.send, args=(new_mail(1), "user1@example.com")
        )
        sender.start()
        sender.join(2)  # the daemon waits on the lock meanwhile
        assert sender.is_alive()  # no answer yet: neither 250 nor 451
        lock.rollback()
    sender.join(30)
    smtp_sink.wait_for(to("user1@example.com"), timeout=30)
    assert daemon.stop() == 0, daemon.log.read_text()
    assert sqlite_db.attempts() == [1]


def test_sigterm_in_a_burst_stops_soon_and_loses_nothing(
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    started: Started,
    sqlite_db: Database,
) -> None:
    server = clean_mailbox
    mails = [new_mail(n) for n in range(60)]
    for raw in mails:
        server.append(HELPDESK, raw)
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    wait_until(lambda: len(sqlite_db.tickets()) >= 3, 30, "burst under way")
    assert daemon.process is not None
    began = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    status = daemon.process.wait(STOP_SECONDS + 10)
    stopped_in = time.monotonic() - began
    daemon.process = None
    assert status == 0, daemon.log.read_text()
    assert stopped_in < STOP_SECONDS
    moved = len(server.list_uids(HELPDESK, DONE))
    left = len(server.list_uids(HELPDESK))
    assert moved + left == 60
    assert len(sqlite_db.tickets()) == moved  # the mail in hand was finished
    assert sqlite_db.all_sent(2 * moved)  # and its notifications sent
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    wait_until(lambda: not server.list_uids(HELPDESK), 60, "inbox empty")
    wait_until(lambda: sqlite_db.all_sent(120), 60, "outbox delivered")
    assert daemon.stop() == 0, daemon.log.read_text()
    assert len(sqlite_db.tickets()) == 60
    received = Counter(message_id(m.message) for m in smtp_sink.messages)
    assert set(received) == {row.message_id for row in sqlite_db.outbox()}
    print(
        f"\nSIGTERM after {moved} of 60 mails: exit 0 in {stopped_in:.1f} s, "
        f"{left} left in the inbox for the next start; "
        f"{sum(received.values()) - len(received)} resent"
    )


def test_a_killed_sender_is_started_again_and_goes_with_the_daemon(
    tmp_path: Path, smtp_sink: SmtpSink, started: Started, sqlite_db: Database
) -> None:
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    assert daemon.process is not None
    daemon.send(new_mail(1), "user1@example.com")
    wait_until(lambda: sqlite_db.all_sent(2), 30, "first notifications")
    (sender,) = _senders_of(daemon.process.pid)
    os.kill(sender, signal.SIGKILL)
    daemon.send(new_mail(2), "user2@example.com")  # queued while no sender runs
    wait_until(lambda: sqlite_db.all_sent(4), 30, "sent by the new sender")
    (again,) = _senders_of(daemon.process.pid)
    assert again != sender
    assert "outbox sender exited (code -9); restarting" in daemon.log.read_text()
    daemon.process.kill()  # the daemon gone without a word: its sender follows
    daemon.process.wait()
    daemon.process = None
    wait_until(lambda: not Path(f"/proc/{again}").exists(), 20, "sender gone")


def _senders_of(daemon_pid: int) -> list[int]:
    """The maild-sender processes under daemon_pid (through the forkserver)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found = []
    for pid in parents:
        with suppress(OSError):
            if (
                Path("/proc") / str(pid) / "comm"
            ).read_text().strip() != "maild-sender":
                continue
            ancestor = parents.get(pid, 0)
            while ancestor not in (0, 1, daemon_pid):
                ancestor = parents.get(ancestor, 0)
            if ancestor == daemon_pid:
                found.append(pid)
    return found


def test_quarantine_list_and_retry_after_a_fix(
    tmp_path: Path, smtp_sink: SmtpSink, started: Started
) -> None:
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    outsider = new_mail(1).replace(b"user1@example.com", b"robot@service.test")
    daemon.send(outsider, "robot@service.test")
    assert daemon.stop() == 0, daemon.log.read_text()
    (kept,) = daemon.maild("quarantine", "list", "--json")
    assert set(kept) == {
        "id",
        "received_at",
        "sender",
        "message_id",
        "reason",
        "source",
    }
    assert (kept["sender"], kept["source"]) == ("robot@service.test", "smtp")
    assert kept["reason"].startswith("outsider")
    assert kept["message_id"].endswith("@client.example.com")
    again = run_maild(daemon.config, "quarantine", "retry", str(kept["id"]))
    assert (again.returncode, again.stdout.strip()) == (0, "quarantined")
    # The fix: the sender's domain is accepted now.
    config = daemon.config.read_text().replace(
        'accepted_domains = ["example.com"]',
        'accepted_domains = ["example.com", "service.test"]',
    )
    daemon.config.write_text(config)
    done = run_maild(daemon.config, "quarantine", "retry", str(kept["id"]))
    assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr
    assert daemon.maild("quarantine", "list", "--json") == []
    (ticket,) = daemon.maild("tickets", "list", "--json")
    assert ticket["requester"]["address"] == "robot@service.test"
    smtp_sink.wait_for(to("robot@service.test"), timeout=30)
    missing = run_maild(daemon.config, "quarantine", "retry", str(kept["id"]))
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1] == f"maild: no quarantined mail {kept['id']}"
    listing = run_maild(daemon.config, "quarantine", "list")
    assert listing.returncode == 0
    assert listing.stdout.split() == ["ID", "RECEIVED_AT", "SENDER", "REASON"]


def _none_pending(db: Database) -> bool:
    return all(row.state != "pending" for row in db.outbox())
