"""Use case: fire the SLA timers that are due (the scheduler's tick).

Due tickets are asked of the store by timer, so the cost follows the number
of due tickets, not the number of tickets. Each ticket is handled in its own
transaction, in which it is read again (locked), what the timer does to it
is decided (core/tickets, through core/workflow), the ticket saved, the
event recorded and the notice queued: a restart neither loses a timer nor
sends one twice. Reminders and re-announcements wait for business hours.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from maild.app.ports import MAILD, DeskStore, NewEvent
from maild.app.queue_notifications import Outbound
from maild.app.staff import members
from maild.config import Settings
from maild.core import notify
from maild.core.sla import BusinessCalendar
from maild.core.tickets import after_timer, ticket_view
from maild.core.timers import may_fire
from maild.domain import Role, Timer

log = logging.getLogger(__name__)

BATCH: Final = 200


class FireTimers:
    def __init__(
        self,
        settings: Settings,
        store: DeskStore,
        outbound: Outbound,
        calendar: BusinessCalendar,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbound = outbound
        self.calendar = calendar

    def fire(self, now: datetime) -> int:
        """Fire every timer due at now; return how many fired."""
        fired = 0
        for timer in Timer:
            if not may_fire(timer, now, self.calendar):
                continue  # held until business hours; stays due
            while True:
                due_ids = self.store.due_tickets(timer, now, BATCH)
                done = sum(self._fire_one(i, timer, now) for i in due_ids)
                fired += done
                if done == 0 or len(due_ids) < BATCH:
                    break  # all fired, or nothing more will fire this tick
        return fired

    def _fire_one(self, ticket_id: int, timer: Timer, now: datetime) -> int:
        """Fire one ticket's timer if it is still due once the ticket is locked."""
        with self.store.transaction() as tx:
            ticket = tx.ticket_by_id(ticket_id, for_update=True)
            due = ticket.timers.due_at(timer) if ticket is not None else None
            if ticket is None or due is None or due > now:
                return 0
            firing = after_timer(ticket, timer, now, self.settings.sla, self.calendar)
            tx.save_ticket(firing.ticket)
            if firing.event is None:
                return 1  # no longer applies: cleared, nobody told
            tx.add_event(
                ticket.id,
                NewEvent(firing.event, MAILD, now, timer.value, is_internal=True),
            )
            view = ticket_view(
                firing.ticket, tx.watchers(ticket.id), tx.attachment_names(ticket.id)
            )
            supervisors = members(self.settings, tx.staff(), Role.SUPERVISOR)
            fired = notify.TimerFired(timer, view, supervisors)
            self.outbound.queue_all(tx, fired, firing.ticket, now)
            log.info(
                "timer fired", extra={"ticket": ticket.number, "timer": timer.value}
            )
            return 1
