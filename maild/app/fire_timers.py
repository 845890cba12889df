"""The SLA desk: fires the timers that are due and sends the morning digests.
Wiring only: `check(now)` is what the scheduler calls.

Due tickets are found with indexed queries on the timer columns, so the cost
follows the number of due tickets, not the number of tickets. Each ticket is
handled in its own transaction, in which the timer is re-read, its notice
queued and the timer cleared (or moved on): a restart neither loses a timer
nor sends one twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute

from maild.adapters.database.models import CounterRow, TicketRow
from maild.adapters.database.store import Store, Tx
from maild.adapters.database.ticket_rows import (
    add_maild_event,
    set_timers,
    ticket_view,
    timers_of,
    view_of,
)
from maild.app.apply_reply import members
from maild.app.queue_notifications import Outbound
from maild.config import Settings
from maild.core import notify
from maild.core.sla import BusinessCalendar
from maild.core.timers import may_fire, timers_after_firing
from maild.domain import CloseReason, EventKind, Role, TicketState, TicketView, Timer

log = logging.getLogger(__name__)

BATCH = 200
DIGEST_LINES = 50  # tickets listed per part of a digest, most urgent first
AT_RISK_WITHIN = timedelta(hours=4)
_OPEN = (TicketState.NEW, TicketState.IN_PROGRESS, TicketState.RESOLVED)
_WORKED = (TicketState.NEW.value, TicketState.IN_PROGRESS.value)
_COLUMNS: dict[Timer, InstrumentedAttribute[datetime | None]] = {
    Timer.REMINDER: TicketRow.reminder_at,
    Timer.BREACH: TicketRow.breach_at,
    Timer.REANNOUNCE: TicketRow.reannounce_at,
    Timer.PDR_RETRY: TicketRow.pdr_retry_at,
    Timer.AUTO_CLOSE: TicketRow.auto_close_at,
}
_EVENTS = {
    Timer.REMINDER: EventKind.REMINDER,
    Timer.PDR_RETRY: EventKind.REMINDER,
    Timer.BREACH: EventKind.BREACH,
    Timer.REANNOUNCE: EventKind.REANNOUNCED,
    Timer.AUTO_CLOSE: EventKind.AUTO_CLOSED,
}
_DIGEST_COUNTER = "digest"


class SlaDesk:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        outbound: Outbound,
        calendar: BusinessCalendar,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbound = outbound
        self.calendar = calendar

    def check(self, now: datetime) -> int:
        """Fire every timer due at now, then the digests; return how many fired."""
        fired = 0
        for timer, column in _COLUMNS.items():
            if not may_fire(timer, now, self.calendar):
                continue  # held until business hours; stays due
            while True:
                due_ids = self._due(column, now)
                done = sum(self._fire_one(i, timer, column, now) for i in due_ids)
                fired += done
                if done == 0 or len(due_ids) < BATCH:
                    break  # all fired, or nothing more will fire this tick
        return fired + self._digests(now)

    def _fire_one(
        self,
        ticket_id: int,
        timer: Timer,
        column: InstrumentedAttribute[datetime | None],
        now: datetime,
    ) -> int:
        """Fire one ticket's timer if it is still due once the row is locked."""
        with self.store.transaction() as tx:
            row = tx.session.get(TicketRow, ticket_id, with_for_update=True)
            due = getattr(row, column.key) if row is not None else None
            if row is None or due is None or due > now:
                return 0
            self._fire(tx, row, timer, now)
            return 1

    def _due(
        self, column: InstrumentedAttribute[datetime | None], now: datetime
    ) -> list[int]:
        with self.store.reading() as session:
            return list(
                session.execute(
                    select(TicketRow.id)
                    .where(column <= now)
                    .order_by(column)
                    .limit(BATCH)
                ).scalars()
            )

    def _fire(self, tx: Tx, row: TicketRow, timer: Timer, now: datetime) -> None:
        if timer is Timer.REANNOUNCE and row.status != TicketState.NEW.value:
            row.reannounce_at = None  # claimed meanwhile: nothing to announce
            return
        if timer is Timer.AUTO_CLOSE:
            if row.status != TicketState.RESOLVED.value:
                row.auto_close_at = None
                return
            row.status = TicketState.CLOSED.value
            row.closed_at, row.close_reason = now, CloseReason.AUTO_CLOSED.value
        if timer is Timer.BREACH and row.first_call_at is None:
            row.callback_met = False
        set_timers(
            row,
            timers_after_firing(
                timer, timers_of(row), now, self.settings.sla, self.calendar
            ),
        )
        add_maild_event(tx, row, _EVENTS[timer], now, timer.value)
        self.outbound.queue_all(
            tx,
            notify.TimerFired(
                timer,
                view_of(tx, row),
                members(self.settings, tx.staff(), "supervisor"),
            ),
            row,
            now,
        )
        log.info("ticket=%s %s", row.number, timer)

    def _digests(self, now: datetime) -> int:
        """Send the morning digests once per business day, at digest_at or later."""
        local = now.astimezone(ZoneInfo(self.settings.sla.timezone))
        if (
            local.time() < self.settings.sla.digest_at
            or not self.calendar.is_business_day(local.date())
        ):
            return 0
        today = int(local.strftime("%y%m%d"))
        with self.store.transaction() as tx:
            counter = tx.session.get(CounterRow, _DIGEST_COUNTER)
            if counter is not None and counter.value >= today:
                return 0
            if counter is None:
                tx.add(CounterRow(name=_DIGEST_COUNTER, value=today))
            else:
                counter.value = today
            return self._send_digests(tx, now)

    def _send_digests(self, tx: Tx, now: datetime) -> int:
        """One digest per technician and supervisor; bounded, indexed queries."""
        added = tx.staff()
        technicians = members(self.settings, added, "technician")
        supervisors = members(self.settings, added, "supervisor")
        pool = self._listed(tx, TicketRow.status == TicketState.NEW.value)
        for address in technicians:
            mine = self._listed(
                tx,
                (TicketRow.owner == address)
                & (TicketRow.status != TicketState.CLOSED.value),
            )
            self.outbound.queue_all(
                tx,
                notify.DigestDue(address, Role.TECHNICIAN, mine + pool, ()),
                None,
                now,
            )
        if not supervisors:
            return len(technicians)
        in_breach = self._listed(
            tx, TicketRow.callback_met.is_(False) & TicketRow.status.in_(_WORKED)
        )
        at_risk = self._listed(tx, TicketRow.breach_at <= now + AT_RISK_WITHIN)
        counts: dict[str, int] = {
            status: int(n)
            for status, n in tx.session.execute(
                select(TicketRow.status, func.count())
                .where(TicketRow.status != TicketState.CLOSED.value)
                .group_by(TicketRow.status)
            )
        }
        lines = (
            *(f"{state}: {counts.get(state.value, 0)}" for state in _OPEN),
            f"in_breach: {len(in_breach)}",
            f"at_risk: {len(at_risk)}",
        )
        for address in supervisors:
            self.outbound.queue_all(
                tx,
                notify.DigestDue(address, Role.SUPERVISOR, in_breach + at_risk, lines),
                None,
                now,
            )
        return len(technicians) + len(supervisors)

    def _listed(self, tx: Tx, condition: ColumnElement[bool]) -> tuple[TicketView, ...]:
        rows = tx.session.execute(
            select(TicketRow)
            .where(condition)
            .order_by(TicketRow.callback_due_at, TicketRow.id)
            .limit(DIGEST_LINES)
        ).scalars()
        return tuple(ticket_view(row, (), ()) for row in rows)
