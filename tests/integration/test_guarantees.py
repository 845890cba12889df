"""Never lose a mail: the real daemon killed (SIGKILL) at chosen points and at
random moments, a mail that dies with the daemon every time, a UIDVALIDITY
change, the same bytes twice. Real Dovecot, SMTP sink, SQLite and PostgreSQL;
no test switch in maild: the chosen points are reached with real mechanisms
(a folder the server cannot write, a table lock, a relay that does not answer).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from maild.adapters.database.engine import upgrade
from tests.support.crash import (
    Database,
    HoldingSink,
    Started,
    kill,
    message_id,
    new_mail,
    to,
)
from tests.support.daemon import run_maild, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DONE = "maild/done"
QUARANTINE = "maild/quarantine"


@contextmanager
def counters_locked(url: str) -> Iterator[None]:
    """Hold a lock on the ticket counters: a new ticket cannot be committed.

    The daemon registers a mail (its attempt is committed) and then waits in
    the transaction that would open the ticket: a point where a crash must
    leave the mail to be handled again, once.
    """
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE counters IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def test_random_kills_during_a_burst_lose_and_duplicate_nothing(
    started: Started,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    sqlite_db: Database,
) -> None:
    server, db = clean_mailbox, sqlite_db
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    mails = {n: new_mail(n) for n in range(40)}
    for n in range(30):  # a burst in the inbox, then more while the daemon runs
        server.append(HELPDESK, mails[n])
    late = iter(range(30, 40))
    at_kill = []
    for kills in range(4):
        daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, attempts=10)
        before = len(db.tickets())
        for n in (next(late), next(late)):
            server.append(HELPDESK, mails[n])
        target = min(before + rng.randint(1, 4), 30 + 2 * (kills + 1))
        wait_until(lambda t=target: len(db.tickets()) >= t, 60, "progress")
        time.sleep(rng.uniform(0, 0.3))  # a random moment after a commit
        kill(daemon)
        at_kill.append(len(db.tickets()))
    for n in late:
        server.append(HELPDESK, mails[n])
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, attempts=10)
    try:
        wait_until(lambda: not server.list_uids(HELPDESK), 60, "inbox empty")
        wait_until(lambda: db.all_sent(80), 60, "outbox delivered")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()

    # Every mail ended exactly once: in the done folder, as one ticket.
    done = sorted(raw for raw, _ in server.fetch_all(HELPDESK, DONE).values())
    assert done == sorted(mails.values())
    assert server.list_uids(HELPDESK, QUARANTINE) == []
    tickets = db.tickets()
    assert sorted(t.subject for t in tickets) == sorted(f"Rafale {n}" for n in mails)
    records = db.mails()
    assert len(records) == 40
    assert {r.state for r in records} == {"done"}
    # Every notification reached the sink; a copy resent after a kill is the
    # same mail (same Message-ID, same bytes); none was queued twice.
    outbox = {row.message_id for row in db.outbox()}
    received = Counter(message_id(m.message) for m in smtp_sink.messages)
    assert set(received) == outbox
    for mid in received:
        copies = {m.data for m in smtp_sink.messages if message_id(m.message) == mid}
        assert len(copies) == 1, mid
    for n in mails:
        confirmations = {
            message_id(m.message)
            for m in smtp_sink.messages
            if to(f"user{n}@example.com")(m)
        }
        assert len(confirmations) == 1, n
    resent = sum(received.values()) - len(received)
    print(
        f"\nseed {seed}: 4 SIGKILLs at {at_kill} tickets; 40 mails, 40 tickets, "
        f"{len(outbox)} notifications, {resent} resent with the same Message-ID, "
        f"attempts {sum(r.attempts for r in records)}"
    )


def test_kill_after_commit_before_the_move_applies_nothing_twice(
    started: Started,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    sqlite_db: Database,
) -> None:
    server = clean_mailbox
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    wait_until(lambda: DONE in server.folders(), 30, "folders created")
    raw = new_mail(1)
    with _unwritable(_maildir(server, DONE)):  # the MOVE fails after the commit
        uid = server.append(HELPDESK, raw)
        smtp_sink.wait_for(to("user1@example.com"), timeout=30)  # committed
        wait_until(lambda: " lost (" in daemon.log.read_text(), 30, "move failed")
        assert server.list_uids(HELPDESK) == [uid]
        # The relay has the notifications once they are marked sent: a kill
        # before that resends them, which "at least once" allows, and this
        # test is about the mail not being applied twice.
        wait_until(lambda: sqlite_db.all_sent(2), 30, "outbox delivered")
        kill(daemon)
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    try:
        wait_until(lambda: not server.list_uids(HELPDESK), 30, "inbox empty")
        wait_until(lambda: sqlite_db.all_sent(2), 30, "outbox delivered")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    assert [r for r, _ in server.fetch_all(HELPDESK, DONE).values()] == [raw]
    assert len(sqlite_db.tickets()) == 1
    assert len([m for m in smtp_sink.messages if to("user1@example.com")(m)]) == 1
    assert "already handled" in daemon.log.read_text()


def test_kill_during_delivery_resends_with_the_same_message_id(
    started: Started, tmp_path: Path, clean_mailbox: DovecotServer, sqlite_db: Database
) -> None:
    server, sink = clean_mailbox, HoldingSink()
    sink.start()
    try:
        sink.hold_next()  # the relay has the confirmation, maild has no answer
        daemon = started.on_mailbox(tmp_path, sink.port, server)
        server.append(HELPDESK, new_mail(1))
        assert sink.held.wait(30)
        kill(daemon)
        sink.release()
        daemon = started.on_mailbox(tmp_path, sink.port, server)
        try:
            wait_until(lambda: sqlite_db.all_sent(2), 30, "outbox delivered")
        finally:
            assert daemon.stop() == 0, daemon.log.read_text()
    finally:
        sink.stop()
    received = sink.message_ids()
    first = sink.received[0][0]
    assert received[first] == 2  # sent again after the crash, as the same mail
    assert len(set(sink.copies(first))) == 1
    assert set(received) == {row.message_id for row in sqlite_db.outbox()}
    assert len(sqlite_db.tickets()) == 1


@pytest.mark.postgres
def test_kill_after_the_attempt_is_counted_handles_the_mail_once(
    started: Started,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    fresh_postgres_db: str,
) -> None:
    server, url = clean_mailbox, fresh_postgres_db
    db = Database(url)
    try:
        daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, url)
        with counters_locked(url):
            server.append(HELPDESK, new_mail(1))
            wait_until(lambda: db.attempts() == [1], 30, "attempt counted")
            kill(daemon)  # registered, not applied
        assert db.tickets() == []
        daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, url)
        try:
            smtp_sink.wait_for(to("user1@example.com"), timeout=30)
            wait_until(lambda: not server.list_uids(HELPDESK), 30, "inbox empty")
            wait_until(lambda: db.all_sent(2), 30, "outbox delivered")
        finally:
            assert daemon.stop() == 0, daemon.log.read_text()
        assert db.attempts() == [2]
        assert len(db.tickets()) == 1
        assert len([m for m in smtp_sink.messages if to("user1@example.com")(m)]) == 1
    finally:
        db.close()


@pytest.mark.postgres
def test_a_mail_that_dies_with_the_daemon_is_quarantined_and_the_inbox_flows(
    started: Started,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    fresh_postgres_db: str,
) -> None:
    server, url = clean_mailbox, fresh_postgres_db
    upgrade(url)  # the tables exist before the lock is taken
    db = Database(url)
    try:
        with counters_locked(url):
            server.append(HELPDESK, new_mail(1, subject="Poison"))
            for attempt in (1, 2, 3):  # handling_attempts = 3
                daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, url)
                wait_until(lambda a=attempt: db.attempts() == [a], 30, "attempt")
                kill(daemon)
            daemon = started.on_mailbox(tmp_path, smtp_sink.port, server, url)
            wait_until(lambda: server.list_uids(HELPDESK, QUARANTINE), 30, "moved")
        server.append(HELPDESK, new_mail(2, subject="Next"))  # the inbox flows
        smtp_sink.wait_for(to("user2@example.com"), timeout=30)
        wait_until(lambda: not server.list_uids(HELPDESK), 30, "inbox empty")
        (kept,) = daemon.maild("quarantine", "list", "--json")
        assert kept["reason"] == "handling failed 3 times"
        assert kept["source"] == f"imap:{HELPDESK}/INBOX"
        assert [t.subject for t in db.tickets()] == ["Next"]
        # After a fix, the kept bytes are handled again as a fresh attempt.
        done = run_maild(daemon.config, "quarantine", "retry", str(kept["id"]))
        assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr
        assert daemon.stop() == 0, daemon.log.read_text()
        assert sorted(t.subject for t in db.tickets()) == ["Next", "Poison"]
        assert daemon.maild("quarantine", "list", "--json") == []
    finally:
        db.close()


def test_uidvalidity_change_resynchronises_by_content(
    started: Started,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    sqlite_db: Database,
) -> None:
    server = clean_mailbox
    _renumber(server)  # UIDs from 1 again, so that the new ones collide
    first, second, new = new_mail(1), new_mail(2), new_mail(3)
    old_uids = [server.append(HELPDESK, raw) for raw in (first, second)]
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    wait_until(lambda: len(server.list_uids(HELPDESK, DONE)) == 2, 30, "handled")
    assert daemon.stop() == 0
    # A handled mail comes back (a restore, a crash before the move) and a new
    # one arrives; then the mailbox is renumbered under a new UIDVALIDITY.
    server.append(HELPDESK, new)
    server.append(HELPDESK, first)
    before = {(r.uidvalidity, r.uid) for r in sqlite_db.mails()}
    _renumber(server)
    with server.connect() as client:
        validity = client.select_folder("INBOX")[b"UIDVALIDITY"]
        new_uids = client.search("ALL")
    assert {validity} != {v for v, _ in before}
    assert set(new_uids) & set(old_uids)  # a UID now names another mail
    daemon = started.on_mailbox(tmp_path, smtp_sink.port, server)
    try:
        wait_until(lambda: not server.list_uids(HELPDESK), 30, "inbox empty")
        wait_until(lambda: sqlite_db.all_sent(6), 30, "outbox delivered")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    assert sorted(t.subject for t in sqlite_db.tickets()) == [
        "Rafale 1",
        "Rafale 2",
        "Rafale 3",
    ]
    assert len([m for m in smtp_sink.messages if to("user1@example.com")(m)]) == 1
    assert "seen again under UIDVALIDITY" in daemon.log.read_text()


def test_same_bytes_twice_at_once_is_one_ticket(
    started: Started, tmp_path: Path, smtp_sink: SmtpSink, sqlite_db: Database
) -> None:
    """An MTA retrying while the first delivery is still being handled."""
    daemon = started.add(start_daemon(tmp_path, smtp_sink.port))
    try:
        for n in range(8):
            raw = new_mail(n)
            senders = [
                threading.Thread(target=daemon.send, args=(raw, f"user{n}@example.com"))
                for _ in range(2)
            ]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
        # A different mail that reuses a Message-ID is not dropped.
        raw = new_mail(8)
        daemon.send(raw, "user8@example.com")
        daemon.send(raw.replace(b"user8@", b"user9@", 1), "user9@example.com")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    subjects = Counter(t.subject for t in sqlite_db.tickets())
    assert subjects == Counter({f"Rafale {n}": 1 for n in range(8)} | {"Rafale 8": 2})


def _maildir(server: DovecotServer, folder: str) -> Path:
    """The Maildir++ directory of a folder of the helpdesk mailbox."""
    return (
        server.root
        / "mail"
        / "example.com"
        / "helpdesk"
        / ("." + folder.replace("/", "."))
    )


@contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    paths = [directory, *(directory / sub for sub in ("cur", "new", "tmp"))]
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(0o555)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def _renumber(server: DovecotServer) -> None:
    """Drop the INBOX's UID list and index: Dovecot renumbers it from 1 under a
    new UIDVALIDITY, as after a mailbox is restored or rebuilt."""
    box = server.root / "mail" / "example.com" / "helpdesk"
    for name in os.listdir(box):
        if name.startswith(("dovecot-uidlist", "dovecot.index")):
            (box / name).unlink()
