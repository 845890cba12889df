"""The outbox sender: delivers queued mail after commit. I/O.

Rows are read in a short transaction, sent with no transaction open, and
marked in another: sent only once the relay accepted the mail; a 4xx or a
connection failure is retried with exponential backoff and jitter; a 5xx
marks the row failed. A restart resends what was not marked, with the same
Message-ID, so a copy sent twice is the same mail to the recipient's client.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select

from maild.adapters.models import OutboxRow
from maild.adapters.store import Store
from maild.errors import DeliveryDeferred, DeliveryFailed

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF = timedelta(hours=1)


class Mailer(Protocol):
    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    message_id: str
    recipients: tuple[str, ...]
    data: bytes
    attempts: int


class OutboxSender:
    def __init__(
        self, store: Store, mailer: Mailer, sender: str, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.sender = sender
        self.clock = clock
        self.wakeup = threading.Event()

    def deliver_due(self) -> int:
        """Send every mail that is due now; return how many were accepted."""
        sent = 0
        for item in self._due(self.clock()):
            try:
                self.mailer.send(
                    item.message_id, self.sender, item.recipients, item.data
                )
            except DeliveryDeferred as exc:
                self._defer(item, str(exc))
                break  # the relay is unwell: stop this round, keep the order
            except DeliveryFailed as exc:
                self._mark(item.id, "failed", str(exc))
            else:
                self._mark(item.id, "sent", "")
                sent += 1
        return sent

    def run(self, stop: threading.Event, idle_seconds: float = 5.0) -> None:
        """Deliver until stop is set; wake early when poked through .wakeup."""
        while not stop.is_set():
            self.deliver_due()
            self.wakeup.wait(idle_seconds)
            self.wakeup.clear()
        self.deliver_due()  # flush what can be flushed before exit
        self.mailer.close()

    def _due(self, now: datetime) -> list[Due]:
        with self.store.reading() as session:
            rows = session.execute(
                select(OutboxRow)
                .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now)
                .order_by(OutboxRow.id)
                .limit(BATCH)
            ).scalars()
            return [
                Due(
                    r.id,
                    r.message_id,
                    tuple(r.recipients.split(",")),
                    r.data,
                    r.attempts,
                )
                for r in rows
            ]

    def _defer(self, item: Due, error: str) -> None:
        delay = min(MAX_BACKOFF, timedelta(seconds=2 ** min(item.attempts, 12)))
        delay *= random.uniform(0.5, 1.0)
        log.warning(
            "outbox: delivery of %s deferred (%s), retry in %ss",
            item.message_id,
            error,
            int(delay.total_seconds()),
        )
        with self.store.transaction() as tx:
            row = tx.session.get(OutboxRow, item.id)
            if row is not None:
                row.attempts += 1
                row.last_error = error[:2000]
                row.next_attempt_at = self.clock() + delay

    def _mark(self, row_id: int, state: str, error: str) -> None:
        with self.store.transaction() as tx:
            row = tx.session.get(OutboxRow, row_id)
            if row is None:
                return
            row.state = state
            row.attempts += 1
            row.last_error = error[:2000]
            if state == "sent":
                row.sent_at = self.clock()
            else:
                log.error("outbox: %s failed for good: %s", row.message_id, error)


def outbox_counts(store: Store) -> dict[str, int]:
    """Count outbox rows by state, for `maild stats`."""
    with store.reading() as session:
        rows = session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
        ).all()
    counts = {"pending": 0, "failed": 0}
    counts.update({state: int(n) for state, n in rows})
    return counts
