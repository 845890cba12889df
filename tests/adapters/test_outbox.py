"""The outbox sender on a real SQLite store and the SMTP sink: sent only once the
relay accepted, backoff with jitter on 4xx and connection errors, 5xx recorded
on the ticket and reported, resent after a crash with the same Message-ID, and
a database that is unavailable never ends the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import make_engine
from maild.adapters.database.models import OutboxRow
from maild.adapters.database.store import Store
from maild.adapters.outgoing.outbox import BATCH, OutboxSender, outbox_counts
from maild.adapters.outgoing.relay import SmtpRelay
from maild.app.ports import DeskSession
from maild.domain import FailedDelivery
from tests.support.desk import Desk
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MARIE = "marie@example.com"
CHEF = "chef@example.com"


def outbox_desk(directory: Path, sink: SmtpSink) -> Desk:
    """The desk on a fresh SQLite store, in French, the relay being the sink."""
    return Desk(directory, language="fr", now=NOW, sink_port=sink.port)


def new_ticket(
    desk: Desk, subject: str = "Imprimante en panne", sender: str = MARIE
) -> None:
    """A new ticket's mail: a confirmation and an announcement to send."""
    desk.mail(sender, subject, "Aide")


@pytest.fixture
def desk(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Desk]:
    handle = outbox_desk(tmp_path, smtp_sink)
    yield handle
    handle.sender.mailer.close()
    handle.close()


def test_sent_only_once_the_relay_accepted(desk: Desk, smtp_sink: SmtpSink) -> None:
    new_ticket(desk)  # a confirmation and an announcement
    smtp_sink.fail_next(1, code=451)
    assert desk.sender.deliver_due() == 0
    first, second = desk.outbox()
    assert (first.state, first.attempts, first.sent_at) == ("pending", 1, None)
    assert "451" in first.last_error
    assert second.attempts == 0  # the round stopped at the first deferral
    assert smtp_sink.messages == []
    desk.later(1)
    assert desk.sender.deliver_due() == 2
    assert [r.state for r in desk.outbox()] == ["sent", "sent"]
    assert all(r.sent_at == desk.clock.now for r in desk.outbox())
    received = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert received == [f"<{r.message_id}>" for r in desk.outbox()]


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(0, 0.5, 1), (1, 1, 2), (4, 8, 16), (11, 1024, 2048), (30, 1800, 3600)],
)
def test_backoff_is_exponential_with_jitter_and_capped(
    desk: Desk, smtp_sink: SmtpSink, attempts: int, low: float, high: float
) -> None:
    new_ticket(desk)
    with desk.store.transaction() as tx:
        tx.session.execute(update(OutboxRow).values(attempts=attempts))
    smtp_sink.fail_next(1, code=421)
    desk.sender.deliver_due()
    delay = (desk.outbox()[0].next_attempt_at - NOW).total_seconds()
    assert low <= delay <= high


def test_an_unreachable_relay_defers(desk: Desk, smtp_sink: SmtpSink) -> None:
    new_ticket(desk)
    smtp_sink.stop()
    assert desk.sender.deliver_due() == 0
    row = desk.outbox()[0]
    assert (row.state, row.attempts) == ("pending", 1)
    assert "refused" in row.last_error.lower()
    assert outbox_counts(desk.store) == {"pending": 2, "failed": 0}


def test_a_refusal_is_recorded_on_the_ticket_and_reported(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    new_ticket(desk)
    smtp_sink.refuse(MARIE, 550)
    assert desk.sender.deliver_due() == 1  # the announcement
    confirmation = desk.outbox()[0]
    assert confirmation.state == "failed"
    assert "550" in confirmation.last_error
    (bounce,) = desk.event_rows("bounce")
    assert (bounce.actor, bounce.is_internal) == ("maild", True)
    assert bounce.text == f"delivery failed: {confirmation.last_error}"
    assert bounce.message_id == confirmation.message_id
    report = desk.outbox()[-1]
    assert (report.recipients, report.audience) == (CHEF, "supervisor")
    assert report.ticket_id == confirmation.ticket_id
    desk.sender.deliver_due()
    (received,) = smtp_sink.wait_for(lambda m: CHEF in m.rcpt_tos)
    assert "Message non remis" in str(received.message["Subject"])
    assert outbox_counts(desk.store) == {"pending": 0, "failed": 1, "sent": 2}


def test_a_failed_report_is_not_reported(desk: Desk, smtp_sink: SmtpSink) -> None:
    new_ticket(desk)
    smtp_sink.refuse(MARIE, 550)
    smtp_sink.refuse(CHEF, 550)
    for _ in range(3):
        desk.sender.deliver_due()
    assert [(r.audience, r.state) for r in desk.outbox()] == [
        ("requester", "failed"),
        ("pool", "sent"),
        ("supervisor", "failed"),
    ]
    assert len(desk.event_rows("bounce")) == 2


def test_a_refused_answer_without_ticket_is_reported(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    new_ticket(desk, "HELP")
    smtp_sink.refuse(MARIE, 550)
    desk.sender.deliver_due()
    desk.sender.deliver_due()
    (received,) = smtp_sink.wait_for(lambda m: CHEF in m.rcpt_tos)
    assert str(received.message["Subject"]).startswith("Message non remis : ")
    assert desk.event_rows("bounce") == []


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
    new_ticket(desk)
    settings = desk.settings
    assert settings.smtp is not None
    relay = SmtpRelay(settings.smtp)
    dying = OutboxSender(
        desk.store, DiesAfterSending(relay), settings.from_address, desk.clock
    )
    with pytest.raises(Crash):
        dying.deliver_due()
    relay.close()
    assert [r.state for r in desk.outbox()] == ["pending", "pending"]
    assert desk.sender.deliver_due() == 2  # the restarted sender
    first = desk.outbox()[0].message_id
    copies = [m.data for m in smtp_sink.messages if first in m.message["Message-ID"]]
    assert len(copies) == 2
    assert copies[0] == copies[1]


def test_the_hook_commits_with_the_failure_or_not_at_all(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    new_ticket(desk)

    def broken(_tx: DeskSession, _failed: FailedDelivery, _now: datetime) -> None:
        raise RuntimeError("bug in the report")

    sender = OutboxSender(
        desk.store,
        desk.sender.mailer,
        desk.settings.from_address,
        desk.clock,
        on_failed=broken,
    )
    smtp_sink.refuse(MARIE, 550)
    with pytest.raises(RuntimeError):
        sender.deliver_due()
    assert desk.outbox()[0].state == "pending"  # rolled back with the hook


def test_an_unavailable_database_does_not_end_the_loop(
    tmp_path: Path, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maild.adapters.outgoing.outbox")
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'maild.db'}")
    store = Store(engine, BlobStore(tmp_path / "blobs"))
    desk = outbox_desk(tmp_path, smtp_sink)
    sender = OutboxSender(store, desk.sender.mailer, "helpdesk@example.com", desk.clock)
    stop = threading.Event()
    loop = threading.Thread(target=sender.run, args=(stop, 0.01))
    loop.start()
    try:
        wait_until(lambda: _unavailable(caplog) >= 3, 10, "three failures logged")
        assert loop.is_alive()
    finally:
        stop.set()
        loop.join(10)
        desk.close()
        engine.dispose()
    assert not loop.is_alive()


def test_a_stop_flushes_what_is_due(desk: Desk, smtp_sink: SmtpSink) -> None:
    new_ticket(desk)
    stop = threading.Event()
    stop.set()
    desk.sender.run(stop)
    assert [r.state for r in desk.outbox()] == ["sent", "sent"]
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
        new_ticket(desk, f"Imprimante {n}", f"user{n}@example.com")
    queued = len(desk.outbox())
    assert queued > BATCH
    assert desk.sender.deliver_due() == queued
    assert {r.state for r in desk.outbox()} == {"sent"}
    assert len(smtp_sink.messages) == queued
