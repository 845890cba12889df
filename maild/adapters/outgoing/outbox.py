"""The outbox sender: delivers queued mail after commit. I/O.

Rows are read in a short transaction, sent with no transaction open, and
marked in another: sent only once the relay accepted the mail; a 4xx or a
connection failure is retried with exponential backoff and jitter; a 5xx
marks the row failed, and the `on_failed` hook records it (on the ticket, to
the supervisors) in that same transaction. A restart resends what was not
marked, with the same Message-ID, so a copy sent twice is the same mail to the
recipient's client. A database that is unavailable pauses the loop; it never
ends it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from sqlalchemy import Table, func, select, update

from maild.adapters.database.models import OutboxRow
from maild.adapters.database.store import Store, Tx
from maild.errors import DeliveryDeferred, DeliveryFailed, StoreUnavailable

log = logging.getLogger(__name__)

BATCH = 50
_OUTBOX = cast(Table, OutboxRow.__table__)
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


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A queued mail the relay refused for good."""

    message_id: str
    ticket_id: int | None
    recipients: tuple[str, ...]
    subject: str
    audience: str
    error: str


class Flag(Protocol):
    """What run() needs of an Event: threading's, or multiprocessing's."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


# Called inside the transaction that marks the mail failed.
FailureHook = Callable[[Tx, FailedDelivery, datetime], None]


class OutboxSender:
    def __init__(
        self,
        store: Store,
        mailer: Mailer,
        sender: str,
        clock: Callable[[], datetime],
        *,
        on_failed: FailureHook | None = None,
        wakeup: Flag | None = None,
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.sender = sender
        self.clock = clock
        self.on_failed = on_failed
        self.wakeup: Flag = wakeup if wakeup is not None else threading.Event()

    def deliver_due(self) -> int:
        """Send every mail that is due now; return how many were accepted.

        In rounds of BATCH, until a round finds fewer or the relay defers: a
        backlog is not left waiting for the next ring of the doorbell (the
        rings stop with the burst that caused them).
        """
        total = 0
        while True:
            due = self._due(self.clock())
            accepted, is_deferred = self._deliver(due)
            total += accepted
            if is_deferred or len(due) < BATCH:
                return total

    def _deliver(self, due: list[Due]) -> tuple[int, bool]:
        """Send one round; return how many were accepted and if the relay deferred."""
        accepted: list[int] = []
        try:
            for item in due:
                try:
                    self.mailer.send(
                        item.message_id, self.sender, item.recipients, item.data
                    )
                except DeliveryDeferred as exc:
                    self._defer(item, str(exc))
                    return len(accepted), True  # the relay is unwell: keep the order
                except DeliveryFailed as exc:
                    self._fail(item.id, str(exc))
                else:
                    accepted.append(item.id)
        finally:
            # One commit for the round: the intake keeps the write lock to itself.
            # A crash before it resends those mails, with the same Message-IDs.
            self._mark_sent(accepted)
        return len(accepted), False

    def run(self, stop: StopFlag, idle_seconds: float = 5.0) -> None:
        """Deliver until stop is set; wake early when poked through .wakeup."""
        while not stop.is_set():
            self._deliver_logged()
            self.wakeup.wait(idle_seconds)
            self.wakeup.clear()
        self._deliver_logged()  # flush what can be flushed before exit
        self.mailer.close()

    def _deliver_logged(self) -> None:
        """Deliver what is due; a database that is unavailable waits a round."""
        try:
            self.deliver_due()
        except StoreUnavailable as exc:
            # Nothing is lost: a mail sent but not marked is sent again later,
            # with the same Message-ID.
            log.warning("outbox: database unavailable (%s); will retry", exc)

    def _due(self, now: datetime) -> list[Due]:
        # Core statements on the table, here and in _mark_sent: the ORM's
        # entity loading and session synchronisation cost this loop more than
        # the SMTP conversation did.
        with self.store.reading() as session:
            rows = session.execute(
                select(_OUTBOX.c.id, _OUTBOX.c.message_id, _OUTBOX.c.recipients,
                       _OUTBOX.c.data, _OUTBOX.c.attempts)
                .where(_OUTBOX.c.state == "pending", _OUTBOX.c.next_attempt_at <= now)
                .order_by(_OUTBOX.c.id)
                .limit(BATCH)
            )  # fmt: skip
            return [
                Due(row_id, message_id, tuple(recipients.split(",")), data, attempts)
                for row_id, message_id, recipients, data, attempts in rows
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
        with self.store.transaction(relaxed=True) as tx:  # lost: retried sooner
            row = tx.session.get(OutboxRow, item.id)
            if row is not None:
                row.attempts += 1
                row.last_error = error[:2000]
                row.next_attempt_at = self.clock() + delay

    def _mark_sent(self, row_ids: list[int]) -> None:
        """Mark the rows the relay accepted as sent, in one transaction.

        Relaxed: a mark lost in a power cut sends the mail again, with the same
        Message-ID, which is the at-least-once promise anyway.
        """
        if not row_ids:
            return
        with self.store.transaction(relaxed=True) as tx:
            tx.session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(row_ids), _OUTBOX.c.state == "pending")
                .values(
                    state="sent",
                    sent_at=self.clock(),
                    attempts=_OUTBOX.c.attempts + 1,
                    last_error="",
                )
            )

    def _fail(self, row_id: int, error: str) -> None:
        """Mark a mail failed for good and let the hook record it, in one commit."""
        with self.store.transaction() as tx:
            row = tx.session.get(OutboxRow, row_id)
            if row is None:
                return
            log.error("outbox: %s failed for good: %s", row.message_id, error)
            row.state = "failed"
            row.attempts += 1
            row.last_error = error[:2000]
            if self.on_failed is not None:
                failed = FailedDelivery(
                    message_id=row.message_id,
                    ticket_id=row.ticket_id,
                    recipients=tuple(row.recipients.split(",")),
                    subject=row.subject,
                    audience=row.audience,
                    error=error,
                )
                self.on_failed(tx, failed, self.clock())
        self.wakeup.set()  # a report may have been queued: send it soon


def outbox_counts(store: Store) -> dict[str, int]:
    """Count outbox rows by state, for `maild stats`."""
    with store.reading() as session:
        rows = session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
        ).all()
    counts = {"pending": 0, "failed": 0}
    counts.update({state: int(n) for state, n in rows})
    return counts
