"""The store on SQLite and on a real PostgreSQL: migrations, numbering, mail records."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from maild.adapters.database import blobs as blobs_module
from maild.adapters.database import engine as database_module
from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import (
    HEAD_REVISION,
    Checkpointer,
    alembic_config,
    is_up_to_date,
    make_engine,
    upgrade,
)
from maild.adapters.database.models import TicketRow, WatcherRow
from maild.adapters.database.report import TicketQuery, list_tickets
from maild.adapters.database.store import Store
from maild.app.ports import NewEvent
from maild.domain import Attachment, EventKind, MailOrigin, MailState, TicketState
from maild.errors import StoreUnavailable

NOW = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'maild.db'}"
    return str(request.getfixturevalue("fresh_postgres_db"))


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine, BlobStore(tmp_path / "blobs"))
    yield store
    store.close()


def test_migrations_reach_head_and_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert not is_up_to_date(engine)  # an empty database
        upgrade(db_url)
        command.check(
            alembic_config(db_url)
        )  # raises when models and migrations differ
        upgrade(db_url)  # a second run is a no-op
        # the revision commands compare with, without loading Alembic
        script = ScriptDirectory.from_config(alembic_config(db_url))
        assert script.get_current_head() == HEAD_REVISION
        assert is_up_to_date(engine)
    finally:
        engine.dispose()


def test_ticket_numbers_are_unique_under_concurrency(store: Store) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            with store.transaction() as tx:
                value = tx.next_sequence("I261129")
            with lock:
                taken.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 81))
    with store.transaction() as tx:
        assert tx.next_sequence("S261129") == 1  # one sequence per type and day


def test_register_mail_counts_attempts_until_final(store: Store) -> None:
    origin = MailOrigin(source="imap:hd/INBOX", uidvalidity=7, uid=42)
    first = store.register_mail(origin, "a" * 64, b"raw", NOW)
    assert (first.state, first.attempts, first.is_new) == (MailState.PENDING, 1, True)
    again = store.register_mail(origin, "a" * 64, b"raw", NOW)
    assert (again.id, again.attempts, again.is_new) == (first.id, 2, False)
    with store.transaction() as tx:
        tx.finish_mail(first.id, MailState.DONE, "ticket I261129_0001", None, NOW)
    done = store.register_mail(origin, "a" * 64, b"raw", NOW)
    assert (done.state, done.attempts) == (MailState.DONE, 2)


def test_same_bytes_elsewhere_are_the_same_mail(store: Store) -> None:
    smtp = store.register_mail(MailOrigin(source="smtp"), "b" * 64, b"x", NOW)
    retry = store.register_mail(MailOrigin(source="smtp"), "b" * 64, b"x", NOW)
    assert retry.id == smtp.id
    other = store.register_mail(MailOrigin(source="smtp"), "c" * 64, b"y", NOW)
    assert other.id != smtp.id  # same Message-ID or not, other bytes: another mail


def ticket_row(n: int, created: datetime = NOW, status: str = "new") -> TicketRow:
    return TicketRow(
        number=f"I261129_{n:04d}",
        token=f"{n:024d}",
        ticket_type="incident",
        status=status,
        subject="s",
        description="d",
        requester_name="",
        requester_address="a@example.com",
        beneficiary_name="",
        beneficiary_address="a@example.com",
        application="",
        urgency="medium",
        phone="",
        owner=None,
        created_at=created,
        callback_due_at=None,
    )


def test_times_come_back_aware_and_equal(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    created = datetime(2026, 11, 29, 17, 30, tzinfo=paris)
    with store.transaction() as tx:
        row = ticket_row(1, created)
        tx.add(row)
        tx.add_event(row.id, NewEvent(EventKind.CREATED, "a", created, ""))
    with store.reading() as session:
        stored = session.execute(select(TicketRow)).scalar_one()
    assert stored.created_at == created
    assert stored.created_at.tzinfo is not None


def test_the_list_gives_each_ticket_its_own_watchers_and_attachments(
    store: Store,
) -> None:
    # more tickets than one IN (...) takes, listed in a few queries
    with store.transaction() as tx:
        rows = [
            ticket_row(n, status="closed" if n % 3 == 0 else "new")
            for n in range(1, 1203)
        ]
        tx.session.add_all(rows)
        tx.session.flush()
        for row in rows[::7]:
            for k in (2, 1):
                name = f"w{k}.{row.number}@example.com"
                tx.add(WatcherRow(ticket_id=row.id, name="", address=name))
            tx.add_attachments(
                row.id, None, [Attachment(f"{row.number}.txt", "text/plain", b"x")]
            )
    listed = list_tickets(store, TicketQuery(status=TicketState.NEW))
    assert [t["number"] for t in listed] == [
        r.number for r in rows if r.status == "new"
    ]
    for ticket in listed:
        number = ticket["number"]
        if int(number[-4:]) % 7 == 1:  # rows[::7]: 1, 8, 15, ...
            assert ticket["watchers"] == [
                f"w2.{number}@example.com",
                f"w1.{number}@example.com",
            ]
            assert [a["filename"] for a in ticket["attachments"]] == [f"{number}.txt"]
        else:
            assert (ticket["watchers"], ticket["attachments"]) == ([], [])
    assert len(list_tickets(store, None)) == 1202


def test_only_relaxed_commits_skip_their_own_disk_flush(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'maild.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = Store(engine, BlobStore(tmp_path / "blobs"))
    full, normal = 2, 1  # PRAGMA synchronous values
    try:
        seen = []
        for relaxed in (False, True, False, True, False):  # one pooled connection
            with store.transaction(relaxed=relaxed) as tx:
                seen.append(tx.session.execute(text("PRAGMA synchronous")).scalar())
        assert seen == [full, normal, full, normal, full]
    finally:
        engine.dispose()


def test_blobs_are_named_by_content(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"hello")
    assert blobs.put(b"hello") == digest
    assert blobs.get(digest) == b"hello"
    assert blobs.path_for(digest).is_relative_to(tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        blobs.path_for("../../etc/passwd")


def test_a_blob_a_power_cut_left_short_is_written_again(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"the kept mail")
    blobs.wait_durable()
    blobs.path_for(digest).write_bytes(b"")  # renamed, never flushed, power cut
    assert blobs.put(b"the kept mail") == digest
    assert blobs.get(digest) == b"the kept mail"
    blobs.close()


def test_a_durable_commit_waits_for_the_blobs_it_names(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[str] = []
    real_flush = blobs_module._flush

    def slow_flush(path: Path, folders: list[Path]) -> None:
        time.sleep(0.2)  # a slow disk: the commit must not overtake it
        real_flush(path, folders)
        flushed.append(path.name)

    monkeypatch.setattr(blobs_module, "_flush", slow_flush)
    origin = MailOrigin(source="smtp")
    record = store.register_mail(origin, "c" * 64, b"kept bytes", NOW)
    assert flushed == []  # the relaxed registration does not wait
    with store.transaction() as tx:
        tx.finish_mail(record.id, MailState.DONE, "ticket", None, NOW)
    kept = store.blobs.path_for(hashlib.sha256(b"kept bytes").hexdigest())
    assert flushed == [kept.name]
    # a mail handled before leaves the inbox without another commit: it waits too
    kept.write_bytes(b"")
    again = store.register_mail(origin, "c" * 64, b"kept bytes", NOW)
    assert again.state == MailState.DONE
    assert len(flushed) == 2


def test_a_blob_is_read_once_its_write_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = blobs_module._write

    def slow_write(path: Path, data: bytes) -> None:
        time.sleep(0.2)  # put() has returned; the file is not there yet
        real_write(path, data)

    monkeypatch.setattr(blobs_module, "_write", slow_write)
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"written later")
    assert blobs.get(digest) == b"written later"
    blobs.close()


def test_a_blob_that_cannot_be_written_fails_the_commit_that_names_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(source: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    origin = MailOrigin(source="smtp")
    monkeypatch.setattr(blobs_module.os, "replace", disk_full)
    record = store.register_mail(origin, "d" * 64, b"no room", NOW)
    with pytest.raises(OSError, match="No space left"), store.transaction() as tx:
        tx.finish_mail(record.id, MailState.DONE, "ticket", None, NOW)
    monkeypatch.undo()
    # rolled back: the mail is still to handle, and its bytes are written then
    again = store.register_mail(origin, "d" * 64, b"no room", NOW)
    assert (again.id, again.state, again.attempts) == (record.id, MailState.PENDING, 2)
    with store.transaction() as tx:
        tx.finish_mail(record.id, MailState.DONE, "ticket", None, NOW)
    assert store.blobs.get(hashlib.sha256(b"no room").hexdigest()) == b"no room"


def test_a_database_locked_too_long_is_unavailable_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'maild.db'}"
    upgrade(url)
    monkeypatch.setattr(database_module, "SQLITE_BUSY_SECONDS", 0.2)
    store = Store(make_engine(url), BlobStore(tmp_path / "blobs"))
    other = sqlite3.connect(tmp_path / "maild.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writes, for long
    try:
        for relaxed in (True, False):  # the lock is met in BEGIN IMMEDIATE
            with (
                pytest.raises(StoreUnavailable, match="database is locked"),
                store.transaction(relaxed=relaxed) as tx,
            ):
                tx.next_sequence("locked")
    finally:
        other.rollback()
        other.close()
        store.close()


def test_without_checkpoints_commits_leave_the_log_to_the_checkpointer(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'maild.db'}"
    upgrade(url)
    database = tmp_path / "maild.db"
    store = Store(make_engine(url, checkpoints=False), BlobStore(tmp_path / "blobs"))
    checkpointer = Checkpointer(url, seconds=3600)  # by hand in this test
    try:
        before = database.stat().st_size
        for batch in range(40):  # past the 1,000 pages a commit would copy
            with store.transaction() as tx:
                tx.session.execute(
                    text("INSERT INTO counters (name, value) VALUES (:n, :v)"),
                    [{"n": f"c{batch}-{i}-{'x' * 200}", "v": i} for i in range(200)],
                )
        assert database.stat().st_size == before  # all of it still in the log
        checkpointer.checkpoint()
        assert database.stat().st_size > before + 1_000_000
        with store.reading() as session:  # nothing lost on the way
            count = session.execute(text("SELECT count(*) FROM counters")).scalar()
        assert count == 40 * 200
    finally:
        checkpointer.stop()
        store.close()
