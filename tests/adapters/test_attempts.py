"""Attempts and exactly-once at the service and the store, on SQLite (and
PostgreSQL for the store): a temporary failure costs no attempt, a mail whose
handling died N times is quarantined, the same mail handled twice at once has
one effect, a quarantined mail can be taken out again."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import make_engine, upgrade
from maild.adapters.database.models import MailRow, TicketRow
from maild.adapters.database.store import Store, Tx
from maild.adapters.outgoing.mime import build_message
from maild.app.handle_mail import HandleMail
from maild.config import load_settings
from maild.core.parse import content_hash
from maild.domain import MailDisposition, MailOrigin, MailRecord, MailState
from maild.errors import MailAlreadyFinished, StoreUnavailable
from maild.runtime import daemon
from tests.support.daemon import write_config

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
IMAP = "imap:helpdesk@example.com/INBOX"


def raw_mail(n: int = 1, sender: str = "marie@example.com") -> bytes:
    return (
        f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: Panne {n}\r\n"
        f"Message-ID: <m{n}@client.example.com>\r\n\r\nAide\r\n"
    ).encode()


class EffectHookStore(Store):
    """Calls before_effect where a mail's effect is about to be written (after
    its attempt was counted), then writes for real."""

    def __init__(self, parts: daemon.Parts, before_effect: Callable[[], None]):
        super().__init__(parts.store.engine, parts.store.blobs)
        self.before_effect = before_effect

    @contextmanager
    def transaction(self, *, relaxed: bool = False) -> Iterator[Tx]:
        if not relaxed:
            self.before_effect()
        with super().transaction(relaxed=relaxed) as tx:
            yield tx


class FlakyStore(EffectHookStore):
    """Raises the given errors in turn where the effect is written."""

    def __init__(self, parts: daemon.Parts, *errors: Exception) -> None:
        super().__init__(parts, self._next_error)
        self.errors = list(errors)

    def _next_error(self) -> None:
        if self.errors:
            raise self.errors.pop(0)


def meeting_store(parts: daemon.Parts) -> EffectHookStore:
    """Two handlings of one mail write their effect only once both registered."""
    return EffectHookStore(parts, threading.Barrier(2, timeout=10).wait)


class RefundFailsOnce(FlakyStore):
    """The database goes away just when the attempt should be given back."""

    is_down = True

    def refund_attempt(self, mail_id: int) -> MailRecord:
        if self.is_down:
            self.is_down = False
            raise StoreUnavailable("database restarting")
        return super().refund_attempt(mail_id)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[daemon.Parts]:
    config, _ = write_config(tmp_path, sink_port=None)
    built = daemon.build(load_settings(config), lambda: NOW, parse_workers=2)
    yield built
    built.close()


def with_store(parts: daemon.Parts, store: Store) -> daemon.Parts:
    """The same parts with another store in a new HandleMail."""
    service = HandleMail(
        parts.settings,
        store,
        parts.parser,
        parts.service.outbound.renderer,
        build_message,
        lambda: NOW,
    )
    return dataclasses.replace(parts, service=service)


def mail_row(parts: daemon.Parts) -> MailRow:
    with parts.store.reading() as session:
        return session.execute(select(MailRow)).scalar_one()


def tickets(parts: daemon.Parts) -> int:
    with parts.store.reading() as session:
        return len(session.execute(select(TicketRow)).all())


def test_a_temporary_failure_costs_no_attempt(parts: daemon.Parts) -> None:
    down = [StoreUnavailable("database restarting") for _ in range(5)]
    flaky = with_store(parts, FlakyStore(parts, *down))
    origin = MailOrigin(source=IMAP, uidvalidity=7, uid=1)
    for _ in range(5):
        with pytest.raises(StoreUnavailable):
            flaky.service.handle(raw_mail(), origin)
        assert mail_row(parts).attempts == 0
    assert flaky.service.handle(raw_mail(), origin) is MailDisposition.DONE
    assert (mail_row(parts).state, mail_row(parts).attempts) == ("done", 1)


def test_an_attempt_the_database_could_not_give_back_is_given_back_later(
    parts: daemon.Parts,
) -> None:
    flaky = with_store(parts, RefundFailsOnce(parts, StoreUnavailable("db gone")))
    origin = MailOrigin(source=IMAP, uidvalidity=7, uid=1)
    with pytest.raises(StoreUnavailable):
        flaky.service.handle(raw_mail(), origin)
    assert mail_row(parts).attempts == 1  # not given back yet
    assert flaky.service.handle(raw_mail(), origin) is MailDisposition.DONE
    assert mail_row(parts).attempts == 1


@pytest.mark.parametrize(
    ("died", "state", "reason"),
    [
        (2, "done", "ticket I261130_0001"),
        (3, "quarantined", "handling failed 3 times"),
        (5, "quarantined", "handling failed 5 times"),
    ],
)
def test_a_mail_whose_handling_died_n_times_is_quarantined(
    parts: daemon.Parts, died: int, state: str, reason: str
) -> None:
    raw = raw_mail()
    origin = MailOrigin(source=IMAP, uidvalidity=7, uid=1)
    for _ in range(died):  # each attempt was counted, then the process died
        parts.store.register_mail(origin, content_hash(raw), raw, NOW)
    handler = daemon.SafeHandler(parts, lambda: None)
    expected = MailDisposition.DONE if state == "done" else MailDisposition.QUARANTINED
    assert handler.handle(raw, origin) is expected
    row = mail_row(parts)
    assert (row.state, row.reason) == (state, reason)


def test_a_bug_quarantines_the_mail_and_the_next_one_flows(
    parts: daemon.Parts,
) -> None:
    buggy = with_store(parts, FlakyStore(parts, RuntimeError("bug")))
    handler = daemon.SafeHandler(buggy, lambda: None)
    first = MailOrigin(source=IMAP, uidvalidity=7, uid=1)
    second = MailOrigin(source=IMAP, uidvalidity=7, uid=2)
    assert handler.handle(raw_mail(1), first) is MailDisposition.QUARANTINED
    assert handler.handle(raw_mail(2), second) is MailDisposition.DONE
    with parts.store.reading() as session:
        rows = session.execute(select(MailRow).order_by(MailRow.id)).scalars().all()
    assert [(r.state, r.reason) for r in rows] == [
        ("quarantined", "internal error: RuntimeError"),
        ("done", "ticket I261130_0001"),
    ]


def test_the_same_mail_handled_twice_at_once_has_one_effect(
    parts: daemon.Parts,
) -> None:
    meeting = with_store(parts, meeting_store(parts))
    results: list[MailDisposition] = []

    def handle() -> None:
        results.append(meeting.service.handle(raw_mail(), MailOrigin(source="smtp")))

    threads = [threading.Thread(target=handle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [MailDisposition.DONE, MailDisposition.DONE]
    assert tickets(parts) == 1
    assert mail_row(parts).attempts == 2


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'maild.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("fresh_postgres_db"))
    )
    upgrade(url)
    engine = make_engine(url)
    yield Store(engine, BlobStore(tmp_path / "blobs"))
    engine.dispose()


def register(store: Store, origin: MailOrigin, raw: bytes) -> MailRecord:
    return store.register_mail(origin, content_hash(raw), raw, NOW)


def finish(store: Store, mail_id: int, state: MailState) -> None:
    with store.transaction() as tx:
        tx.finish_mail(mail_id, state, "why", None, NOW)


def test_refund_only_takes_back_a_counted_attempt(store: Store) -> None:
    record = register(store, MailOrigin(source="smtp"), b"raw")
    assert store.refund_attempt(record.id).attempts == 0
    assert store.refund_attempt(record.id).attempts == 0  # never below zero
    register(store, MailOrigin(source="smtp"), b"raw")
    finish(store, record.id, MailState.DONE)
    assert store.refund_attempt(record.id).attempts == 1  # final: left alone
    with pytest.raises(LookupError):
        store.refund_attempt(record.id + 100)


def test_a_mail_is_finished_once(store: Store) -> None:
    record = register(store, MailOrigin(source="smtp"), b"raw")
    finish(store, record.id, MailState.DONE)
    with pytest.raises(MailAlreadyFinished) as caught:
        finish(store, record.id, MailState.QUARANTINED)
    assert caught.value.state is MailState.DONE
    assert register(store, MailOrigin(source="smtp"), b"raw").state is MailState.DONE


def test_reopen_quarantined_gives_the_kept_bytes_and_place(store: Store) -> None:
    origin = MailOrigin(source=IMAP, uidvalidity=7, uid=42)
    record = register(store, origin, b"the raw bytes")
    with pytest.raises(LookupError, match="no quarantined mail"):
        store.reopen_quarantined(record.id)  # pending, not quarantined
    finish(store, record.id, MailState.QUARANTINED)
    kept = store.reopen_quarantined(record.id)
    assert (kept.id, kept.raw) == (record.id, b"the raw bytes")
    assert (kept.origin.source, kept.origin.uidvalidity, kept.origin.uid) == (
        IMAP,
        7,
        42,
    )
    again = register(store, origin, b"the raw bytes")
    assert (again.id, again.state, again.attempts) == (record.id, MailState.PENDING, 1)
    with pytest.raises(LookupError):
        store.reopen_quarantined(record.id + 100)


def test_reopen_without_the_kept_bytes_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    record = register(store, MailOrigin(source="smtp"), b"lost bytes")
    finish(store, record.id, MailState.QUARANTINED)
    for path in (tmp_path / "blobs").rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(LookupError, match="gone"):
        store.reopen_quarantined(record.id)
    assert register(store, MailOrigin(source="smtp"), b"lost bytes").state is (
        MailState.QUARANTINED
    )


def test_a_new_uidvalidity_is_resynchronised_by_content(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maild.adapters.database.mails")
    handled = register(store, MailOrigin(source=IMAP, uidvalidity=7, uid=1), b"A")
    finish(store, handled.id, MailState.DONE)
    # The mailbox was renumbered: mail A is now UID 2, another mail took UID 1.
    moved = register(store, MailOrigin(source=IMAP, uidvalidity=8, uid=2), b"A")
    assert (moved.id, moved.state) == (handled.id, MailState.DONE)
    assert "seen again under UIDVALIDITY 8 (was 7/1)" in caplog.text
    other = register(store, MailOrigin(source=IMAP, uidvalidity=8, uid=1), b"B")
    assert other.id != handled.id
    assert (other.state, other.is_new) == (MailState.PENDING, True)
