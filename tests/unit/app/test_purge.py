"""Use case: the purge (app/purge.py) on the in-memory store. No I/O.

A ticket closed longer ago than `mail_days_after_close` loses its raw mails,
the bytes of what was sent on it (and their .eml copies, through
forget_sent) and gains a `purged` event; a ticket closed since keeps all;
a dry run counts what the purge then does, and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from maild.app.purge import Purge
from maild.core.retention import Policy, Purged
from maild.domain import EventKind, Ticket, TicketState
from tests.unit.app.conftest import ALICE, MARIE, AppDesk

YEAR = timedelta(days=365)


def closed(desk: AppDesk, subject: str) -> Ticket:
    """A ticket Marie opened and accepted, its notifications sent."""
    ticket = desk.open(subject=subject)
    desk.reply(ticket, ALICE, "CLAIM\nRESOLVED toner replaced")
    desk.reply(ticket, MARIE, "ACCEPT")
    desk.store.mark_sent([q.id for q in desk.store.outbox()], desk.clock.now)
    ticket = desk.ticket(ticket.number)
    assert ticket.status is TicketState.CLOSED
    return ticket


def test_an_expired_ticket_loses_its_bytes_and_its_sent_copies(desk: AppDesk) -> None:
    old = closed(desk, "Printer")
    desk.clock.now += YEAR + timedelta(days=1)
    recent = closed(desk, "Screen")
    forgotten: list[str] = []
    purge = Purge(Policy(365, 30), desk.store, forget_sent=forgotten.extend)

    counted = purge.run(desk.clock.now, dry_run=True)
    assert forgotten == []  # a dry run touches nothing
    assert counted == purge.run(desk.clock.now) == Purged(mails=3, blobs=3)

    sent_on_old = {
        q.mail.message_id for q in desk.store.outbox() if q.ticket_id == old.id
    }
    assert set(forgotten) == sent_on_old
    assert [e.kind for e in desk.events(old)][-1] is EventKind.PURGED
    kept = {(m.ticket_id, m.is_kept) for m in desk.store.mail_records()}
    assert kept == {(old.id, False), (recent.id, True)}
    assert all(q.data == b"" for q in desk.store.outbox() if q.ticket_id == old.id)
    assert all(q.data for q in desk.store.outbox() if q.ticket_id == recent.id)
    assert purge.run(desk.clock.now) == Purged()  # once
