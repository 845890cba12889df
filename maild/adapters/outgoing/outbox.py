"""The outbox sender: delivers queued mail after commit. I/O (SMTP, through the store).

Rows are read in a short transaction, sent with no transaction open, and
marked in another: sent only once the relay accepted the mail; a 4xx or a
connection failure is retried with exponential backoff and jitter; a 5xx
marks the row failed, and the `on_failed` hook records it (on the ticket, to
the supervisors) in that same transaction. A restart resends what was not
marked, with the same Message-ID, so a copy sent twice is the same mail to the
recipient's client. A database that is unavailable pauses the loop; it never
ends it. The queue's SQL lives in the database adapter (OutboxStore below).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from maild.adapters.outgoing.relay import Mailer
from maild.app.ports import DeskSession
from maild.domain import FailedDelivery, OutboxState
from maild.errors import DeliveryDeferred, DeliveryFailed, StoreUnavailable

log = logging.getLogger(__name__)

BATCH = 50
# A round sends for at most this long: the rows it took are its own for a
# minute (several instances, outbox_rows.CLAIM); the rest wait for the next.
ROUND_SECONDS = 30.0
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Due:
    """A queued mail whose time to be sent has come."""

    id: int
    message_id: str
    recipients: tuple[str, ...]
    data: bytes
    attempts: int
    ticket: str | None = None  # its number, for the log


class OutboxSession(DeskSession, Protocol):
    """A transaction that can also mark a queued mail failed."""

    def mark_failed(self, outbox_id: int, error: str) -> FailedDelivery | None:
        """Mark a queued mail failed for good; None if there is no such mail."""


class OutboxStore(Protocol):
    """What the sender needs of the store: the queue, a transaction at a time."""

    def transaction(
        self, *, relaxed: bool = False
    ) -> AbstractContextManager[OutboxSession]: ...
    def due_outbox(self, now: datetime, limit: int) -> list[Due]:
        """The pending mails due at now, in the order they were queued."""

    def take_due(self, now: datetime, limit: int) -> list[Due]:
        """The pending mails due at now, taken by this sender for a while: the
        senders of several instances never take the same one at once."""

    def mark_sent(self, outbox_ids: Sequence[int], now: datetime) -> None:
        """Mark pending mails sent (and count the attempt), in one commit."""

    def defer(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt on a pending mail and when to try again."""

    def outbox_counts(self) -> Mapping[OutboxState, int]:
        """How many queued mails are in each state."""


class Flag(Protocol):
    """What run() needs of an Event: threading's, or multiprocessing's."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


# Called inside the transaction that marks the mail failed.
FailureHook = Callable[[DeskSession, FailedDelivery, datetime], None]


class OutboxSender:
    def __init__(
        self,
        store: OutboxStore,
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
            due = self.store.take_due(self.clock(), BATCH)
            accepted, is_deferred = self._deliver(due)
            total += accepted
            if is_deferred or len(due) < BATCH:
                return total

    def _deliver(self, due: list[Due]) -> tuple[int, bool]:
        """Send one round; return how many were accepted and if the relay deferred."""
        accepted: list[int] = []
        ends = time.monotonic() + ROUND_SECONDS
        try:
            for item in due:
                if time.monotonic() > ends:
                    return len(accepted), True  # the relay is slow: the rest later
                try:
                    self.mailer.send(
                        item.message_id, self.sender, item.recipients, item.data
                    )
                except DeliveryDeferred as exc:
                    self._defer(item, str(exc))
                    return len(accepted), True  # the relay is unwell: keep the order
                except DeliveryFailed as exc:
                    self._fail(item, str(exc))
                else:
                    accepted.append(item.id)
                    log.info("notification sent", extra=_fields(item))
        finally:
            # One commit for the round: the intake keeps the write lock to itself.
            # A crash before it resends those mails, with the same Message-IDs.
            if accepted:
                self.store.mark_sent(accepted, self.clock())
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

    def _defer(self, item: Due, error: str) -> None:
        delay = min(MAX_BACKOFF, timedelta(seconds=2 ** min(item.attempts, 12)))
        delay *= random.uniform(0.5, 1.0)
        log.warning(
            "notification deferred",
            extra=_fields(item, error=error, retry_in=int(delay.total_seconds())),
        )
        self.store.defer(item.id, error, self.clock() + delay)

    def _fail(self, item: Due, error: str) -> None:
        """Mark a mail failed for good and let the hook record it, in one commit."""
        with self.store.transaction() as tx:
            failed = tx.mark_failed(item.id, error)
            if failed is None:
                return
            # Not an error: the hook tells the supervisors, who act on it.
            log.warning("notification failed", extra=_fields(item, error=error))
            if self.on_failed is not None:
                self.on_failed(tx, failed, self.clock())
        self.wakeup.set()  # a report may have been queued: send it soon


def _fields(item: Due, **more: object) -> dict[str, object]:
    """A notification's fields in the log: which mail, to whom, on which ticket."""
    return {
        "msgid": item.message_id,
        "to": item.recipients,
        "ticket": item.ticket,
        **more,
    }


def outbox_counts(store: OutboxStore) -> dict[str, int]:
    """Count queued mails by state, for stats: OutboxState keys (str values),
    pending and failed always there."""
    counts: dict[str, int] = {OutboxState.PENDING: 0, OutboxState.FAILED: 0}
    for state, count in store.outbox_counts().items():
        counts[state] = count
    return counts
