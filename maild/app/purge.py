"""Use case: remove what retention says is due (the daily purge, `maild purge`).

Closed tickets whose closure is older than `retention.mail_days_after_close`
lose their raw mails and attachments and keep their facts; quarantined and
ignored mails older than `retention.quarantine_days` lose their bytes and
keep their record; so do the copies of what was sent on a purged ticket,
kept as .eml files by a desk without a relay (forget_sent, called within
the batch's transaction before its commit: killed in between, the tickets
are due again and the copies already gone, and the next run ends the same).
Tickets go in small batches, one transaction a batch (the
intake waits for one batch at most, never for the whole purge), each ticket
read again and checked against the rule (core/retention.py) in that
transaction and marked purged with a `purged` event that holds counts, no
personal data. Then the blobs nothing names any more are swept. A purge
killed anywhere leaves committed batches done and the rest due: the next run
ends in the state one uninterrupted run would have reached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Final

from maild.app.ports import MAILD, DeskSession, NewEvent, RetentionStore
from maild.core.retention import (
    Cutoffs,
    Dropped,
    Policy,
    Purged,
    cutoffs,
    freed_blobs,
    is_mail_due,
    is_ticket_due,
    purge_note,
)
from maild.domain import EventKind

log = logging.getLogger(__name__)

BATCH: Final = 50  # tickets a transaction: a few milliseconds of the write lock
SWEEP_BATCH: Final = 200


class Purge:
    def __init__(
        self,
        policy: Policy,
        store: RetentionStore,
        *,
        batch: int = BATCH,
        between_batches: Callable[[], None] = lambda: None,
        forget_sent: Callable[[Sequence[str]], None] = lambda message_ids: None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.batch = batch
        self.between_batches = between_batches  # e.g. yield to the intake
        self.forget_sent = forget_sent  # the .eml copies of these Message-IDs

    def run(self, now: datetime, *, dry_run: bool = False) -> Purged:
        """Remove (dry_run: count) what is due at now; return the totals."""
        cut = cutoffs(self.policy, now)
        tickets, shas_t, due_tickets = self._tickets(cut, now, dry_run=dry_run)
        mails, shas_m, due_mails = self._mails(cut, now, dry_run=dry_run)
        total = tickets + mails
        if dry_run:  # the blobs only due rows name, whichever batch they were in
            shas = shas_t | shas_m
            names = self.store.blob_names(shas)
            freed = freed_blobs(shas, names, due_tickets, due_mails)
            return Purged(total.mails, total.attachments, len(freed))
        total += Purged(blobs=sweep(self.store, self.between_batches))
        if total != Purged():
            log.info(
                "purge: %s raw mail(s), %s attachment(s), %s blob(s) removed",
                total.mails,
                total.attachments,
                total.blobs,
            )
        return total

    def _tickets(
        self, cut: Cutoffs, now: datetime, *, dry_run: bool
    ) -> tuple[Purged, frozenset[str], frozenset[int]]:
        """Purge the tickets due; return the totals, the blobs their rows
        named and the tickets purged."""
        total, shas, due, after = Purged(), set[str](), set[int](), 0
        while ids := self.store.tickets_due_for_purge(
            cut.tickets_closed_before, after, self.batch
        ):
            with self._transaction(dry_run) as tx:
                sent: list[str] = []
                for ticket_id in ids:
                    dropped = self._ticket(tx, ticket_id, now)
                    if dropped is None:
                        continue
                    due.add(ticket_id)
                    total += Purged(dropped.mails, dropped.attachments)
                    shas |= dropped.blobs
                    sent += dropped.sent
                if sent and not dry_run:
                    self.forget_sent(sent)
            after = ids[-1]
            self.between_batches()
        return total, frozenset(shas), frozenset(due)

    def _ticket(self, tx: DeskSession, ticket_id: int, now: datetime) -> Dropped | None:
        ticket = tx.ticket_by_id(ticket_id, for_update=True)
        if ticket is None or not is_ticket_due(
            ticket.status, ticket.closed_at, self.policy, now
        ):
            return None  # reopened meanwhile: not due
        dropped = tx.drop_ticket_mails(ticket_id, now)
        done = Purged(dropped.mails, dropped.attachments)
        tx.add_event(
            ticket_id,
            NewEvent(EventKind.PURGED, MAILD, now, purge_note(done), is_internal=True),
        )
        log.info("ticket purged ticket=%s", ticket.number)
        return dropped

    def _mails(
        self, cut: Cutoffs, now: datetime, *, dry_run: bool
    ) -> tuple[Purged, frozenset[str], frozenset[int]]:
        """Drop the bytes of the quarantined and ignored mails due; return the
        totals, the blobs they named and the mails whose bytes went."""
        total, shas, due, after = Purged(), set[str](), set[int](), 0
        while ids := self.store.mails_due_for_purge(
            cut.mails_handled_before, after, self.batch
        ):
            with self._transaction(dry_run) as tx:
                for mail_id in ids:
                    fate = tx.mail_fate(mail_id)
                    if fate is None or not is_mail_due(*fate, self.policy, now):
                        continue  # retried from the quarantine meanwhile
                    dropped = tx.drop_mail_bytes(mail_id)
                    total += Purged(mails=dropped.mails)
                    shas |= dropped.blobs
                    if dropped.mails:
                        due.add(mail_id)
            after = ids[-1]
            self.between_batches()
        return total, frozenset(shas), frozenset(due)

    def _transaction(self, dry_run: bool) -> AbstractContextManager[DeskSession]:
        return self.store.rehearsal() if dry_run else self.store.transaction()


def sweep(
    store: RetentionStore, between_batches: Callable[[], None] = lambda: None
) -> int:
    """Remove the blob files nothing names any more; return how many."""
    removed = 0
    while True:
        looked, gone = store.sweep_blobs(SWEEP_BATCH)
        removed += gone
        if looked < SWEEP_BATCH:
            return removed
        between_batches()
