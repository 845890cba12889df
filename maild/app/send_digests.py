"""Use case: the morning digests, once per business day at `sla.digest_at`.

Each technician gets their open tickets and the pool; each supervisor the
tickets whose call-back deadline was missed or is near, and the backlog by
state. The day is claimed in the same transaction as the digests are queued,
so a restart sends them once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from maild.app.ports import DeskSession, DeskStore, TicketFilter
from maild.app.queue_notifications import Outbound
from maild.app.staff import members
from maild.config import Settings
from maild.core import notify
from maild.core.sla import BusinessCalendar
from maild.core.tickets import ticket_view
from maild.domain import Role, TicketState, TicketView

DIGEST_LINES: Final = 50  # tickets listed per part of a digest, most urgent first
AT_RISK_WITHIN: Final = timedelta(hours=4)
_WORKED: Final = frozenset({TicketState.NEW, TicketState.IN_PROGRESS})
_ORDER: Final = (TicketState.NEW, TicketState.IN_PROGRESS, TicketState.RESOLVED)


class SendDigests:
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

    def send(self, now: datetime) -> int:
        """Send the day's digests if they are due and not sent; return how many."""
        local = now.astimezone(ZoneInfo(self.settings.sla.timezone))
        if (
            local.time() < self.settings.sla.digest_at
            or not self.calendar.is_business_day(local.date())
        ):
            return 0
        with self.store.transaction() as tx:
            if not tx.claim_digest_day(int(local.strftime("%y%m%d"))):
                return 0
            return self._queue(tx, now)

    def _queue(self, tx: DeskSession, now: datetime) -> int:
        added = tx.staff()
        technicians = members(self.settings, added, Role.TECHNICIAN)
        supervisors = members(self.settings, added, Role.SUPERVISOR)
        pool = _listed(tx, TicketFilter(states=frozenset({TicketState.NEW})))
        for address in technicians:
            mine = _listed(tx, TicketFilter(owner=address))
            digest = notify.DigestDue(address, Role.TECHNICIAN, mine + pool, ())
            self.outbound.queue_all(tx, digest, None, now)
        if not supervisors:
            return len(technicians)
        in_breach = _listed(tx, TicketFilter(states=_WORKED, is_callback_missed=True))
        at_risk = _listed(
            tx,
            TicketFilter(
                states=frozenset(TicketState), breach_before=now + AT_RISK_WITHIN
            ),
        )
        counts = tx.count_by_state()
        lines = (
            *(f"{state}: {counts.get(state, 0)}" for state in _ORDER),
            f"in_breach: {len(in_breach)}",
            f"at_risk: {len(at_risk)}",
        )
        for address in supervisors:
            digest = notify.DigestDue(
                address, Role.SUPERVISOR, in_breach + at_risk, lines
            )
            self.outbound.queue_all(tx, digest, None, now)
        return len(technicians) + len(supervisors)


def _listed(tx: DeskSession, which: TicketFilter) -> tuple[TicketView, ...]:
    return tuple(ticket_view(t) for t in tx.tickets(which, DIGEST_LINES))
