"""The outbox sender on a real SQLite store and the SMTP sink: sent only once the
relay accepted, backoff with jitter on 4xx and connection errors, 5xx recorded
on the ticket and reported, resent after a crash with the same Message-ID, and
a database that is unavailable never ends the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import make_engine
from maild.adapters.database.models import EventRow, OutboxRow
from maild.adapters.database.store import Store, Tx
from maild.adapters.outgoing.outbox import (
    BATCH,
    FailedDelivery,
    OutboxSender,
    outbox_counts,
)
from maild.adapters.outgoing.relay import SmtpRelay
from maild.config import load_settings
from maild.domain import MailOrigin
from maild.runtime import daemon
from tests.support.daemon import write_config
from tests.support.factories import FakeClock
from tests.support.smtp_sink import SmtpSink

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MARIE = "marie@example.com"
CHEF = "chef@example.com"


class Desk:
    """The daemon's parts on a fresh SQLite store, the relay being the sink."""

    def __init__(self, tmp_path: Path, sink: SmtpSink) -> None:
        config, _ = write_config(tmp_path, sink_port=sink.port)
        self.clock = FakeClock(NOW)
        self.parts = daemon.build(load_settings(config), self.clock, parse_workers=1)
        self.outbox = self.parts.outbox
        self.sent = 0

    def mail(self, subject: str = "Imprimante en panne", sender: str = MARIE) -> None:
        self.sent += 1
        raw = (
            f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{self.sent}@client.example.com>\r\n\r\nAide\r\n"
        ).encode()
        self.parts.service.handle(raw, MailOrigin(source="replay"))

    def rows(self) -> list[OutboxRow]:
        with self.parts.store.reading() as session:
            return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))

    def events(self, kind: str) -> list[EventRow]:
        with self.parts.store.reading() as session:
            return list(session.scalars(select(EventRow).where(EventRow.kind == kind)))

    def later(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)


@pytest.fixture
def desk(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Desk]:
    handle = Desk(tmp_path, smtp_sink)
    yield handle
    handle.outbox.mailer.close()
    handle.parts.close()


def test_sent_only_once_the_relay_accepted(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.mail()  # a confirmation and an announcement
    smtp_sink.fail_next(1, code=451)
    assert desk.outbox.deliver_due() == 0
    first, second = desk.rows()
    assert (first.state, first.attempts, first.sent_at) == ("pending", 1, None)
    assert "451" in first.last_error
    assert second.attempts == 0  # the round stopped at the first deferral
    assert smtp_sink.messages == []
    desk.later(1)
    assert desk.outbox.deliver_due() == 2
    assert [r.state for r in desk.rows()] == ["sent", "sent"]
    assert all(r.sent_at == desk.clock.now for r in desk.rows())
    received = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert received == [f"<{r.message_id}>" for r in desk.rows()]


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(0, 0.5, 1), (1, 1, 2), (4, 8, 16), (11, 1024, 2048), (30, 1800, 3600)],
)
def test_backoff_is_exponential_with_jitter_and_capped(
    desk: Desk, smtp_sink: SmtpSink, attempts: int, low: float, high: float
) -> None:
    desk.mail()
    with desk.parts.store.transaction() as tx:
        tx.session.execute(update(OutboxRow).values(attempts=attempts))
    smtp_sink.fail_next(1, code=421)
    desk.outbox.deliver_due()
    delay = (desk.rows()[0].next_attempt_at - NOW).total_seconds()
    assert low <= delay <= high


def test_an_unreachable_relay_defers(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.mail()
    smtp_sink.stop()
    assert desk.outbox.deliver_due() == 0
    row = desk.rows()[0]
    assert (row.state, row.attempts) == ("pending", 1)
    assert "refused" in row.last_error.lower()
    assert outbox_counts(desk.parts.store) == {"pending": 2, "failed": 0}


def test_a_refusal_is_recorded_on_the_ticket_and_reported(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk.mail()
    smtp_sink.refuse(MARIE, 550)
    assert desk.outbox.deliver_due() == 1  # the announcement
    confirmation = desk.rows()[0]
    assert confirmation.state == "failed"
    assert "550" in confirmation.last_error
    (bounce,) = desk.events("bounce")
    assert (bounce.actor, bounce.is_internal) == ("maild", True)
    assert bounce.text == f"delivery failed: {confirmation.last_error}"
    assert bounce.message_id == confirmation.message_id
    report = desk.rows()[-1]
    assert (report.recipients, report.audience) == (CHEF, "supervisor")
    assert report.ticket_id == confirmation.ticket_id
    desk.outbox.deliver_due()
    (received,) = smtp_sink.wait_for(lambda m: CHEF in m.rcpt_tos)
    assert "Message non remis" in str(received.message["Subject"])
    assert outbox_counts(desk.parts.store) == {"pending": 0, "failed": 1, "sent": 2}


def test_a_failed_report_is_not_reported(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.mail()
    smtp_sink.refuse(MARIE, 550)
    smtp_sink.refuse(CHEF, 550)
    for _ in range(3):
        desk.outbox.deliver_due()
    assert [(r.audience, r.state) for r in desk.rows()] == [
        ("requester", "failed"),
        ("pool", "sent"),
        ("supervisor", "failed"),
    ]
    assert len(desk.events("bounce")) == 2


def test_a_refused_answer_without_ticket_is_reported(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk.mail(subject="HELP")
    smtp_sink.refuse(MARIE, 550)
    desk.outbox.deliver_due()
    desk.outbox.deliver_due()
    (received,) = smtp_sink.wait_for(lambda m: CHEF in m.rcpt_tos)
    assert str(received.message["Subject"]).startswith("Message non remis : ")
    assert desk.events("bounce") == []


class Crash(BaseException):
    """The process dying right after the relay accepted, before the mark."""


class DiesAfterSending:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None:
        self.relay.send(message_id, sender, recipients, data)
        raise Crash

    def close(self) -> None:
        self.relay.close()


def test_a_crash_before_the_mark_resends_the_same_mail(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk.mail()
    settings = desk.parts.settings
    assert settings.smtp is not None
    relay = SmtpRelay(settings.smtp)
    dying = OutboxSender(
        desk.parts.store, DiesAfterSending(relay), settings.from_address, desk.clock
    )
    with pytest.raises(Crash):
        dying.deliver_due()
    relay.close()
    assert [r.state for r in desk.rows()] == ["pending", "pending"]
    assert desk.outbox.deliver_due() == 2  # the restarted sender
    first = desk.rows()[0].message_id
    copies = [m.data for m in smtp_sink.messages if first in m.message["Message-ID"]]
    assert len(copies) == 2
    assert copies[0] == copies[1]


def test_the_hook_commits_with_the_failure_or_not_at_all(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk.mail()

    def broken(_tx: Tx, _failed: FailedDelivery, _now: datetime) -> None:
        raise RuntimeError("bug in the report")

    sender = OutboxSender(
        desk.parts.store,
        desk.outbox.mailer,
        desk.parts.settings.from_address,
        desk.clock,
        on_failed=broken,
    )
    smtp_sink.refuse(MARIE, 550)
    with pytest.raises(RuntimeError):
        sender.deliver_due()
    assert desk.rows()[0].state == "pending"  # rolled back with the hook


def test_an_unavailable_database_does_not_end_the_loop(
    tmp_path: Path, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maild.adapters.outgoing.outbox")
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'maild.db'}")
    store = Store(engine, BlobStore(tmp_path / "blobs"))
    desk = Desk(tmp_path, smtp_sink)
    sender = OutboxSender(store, desk.outbox.mailer, "helpdesk@example.com", desk.clock)
    stop = threading.Event()
    loop = threading.Thread(target=sender.run, args=(stop, 0.01))
    loop.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while _unavailable(caplog) < 3 and datetime.now(UTC) < deadline:
            stop.wait(0.01)  # polling the log with a deadline
        assert _unavailable(caplog) >= 3
        assert loop.is_alive()
    finally:
        stop.set()
        loop.join(10)
        desk.parts.close()
        engine.dispose()
    assert not loop.is_alive()


def test_a_stop_flushes_what_is_due(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.mail()
    stop = threading.Event()
    stop.set()
    desk.outbox.run(stop)
    assert [r.state for r in desk.rows()] == ["sent", "sent"]
    assert len(smtp_sink.messages) == 2


def _unavailable(caplog: pytest.LogCaptureFixture) -> int:
    return sum("database unavailable" in r.getMessage() for r in caplog.records)


def test_a_backlog_larger_than_a_round_is_sent_at_once(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    # a burst left more than one round of mail; the doorbell rang for it while
    # the sender was busy and rings no more: one call must send it all, not
    # one round now and the next after the idle wait
    for n in range(BATCH // 2 + 5):  # two notifications each
        desk.mail(f"Imprimante {n}", sender=f"user{n}@example.com")
    queued = len(desk.rows())
    assert queued > BATCH
    assert desk.outbox.deliver_due() == queued
    assert {r.state for r in desk.rows()} == {"sent"}
    assert len(smtp_sink.messages) == queued
