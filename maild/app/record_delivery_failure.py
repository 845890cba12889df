"""Failed deliveries: noted on their ticket, told to the supervisors. Wiring only.

`DeliveryDesk.record` is the outbox sender's `on_failed` hook: it runs inside
the transaction that marks the outbox row failed, so the `bounce` event on the
ticket and the report to the supervisors are written if and only if that is.
Who is told is decided in `core/notify.py` (never a report of a report).
"""

from __future__ import annotations

import logging
from datetime import datetime

from maild.adapters.database.models import TicketRow
from maild.adapters.database.store import Tx
from maild.adapters.database.ticket_rows import add_maild_event, view_of
from maild.adapters.outgoing.outbox import FailedDelivery
from maild.app.apply_reply import members
from maild.app.queue_notifications import Outbound
from maild.config import Settings
from maild.core import notify
from maild.domain import Audience, EventKind

log = logging.getLogger(__name__)


class DeliveryDesk:
    def __init__(self, settings: Settings, outbound: Outbound) -> None:
        self.settings = settings
        self.outbound = outbound

    def record(self, tx: Tx, failed: FailedDelivery, now: datetime) -> None:
        """Note a failed delivery on its ticket and queue the supervisors' report."""
        ticket = (
            tx.session.get(TicketRow, failed.ticket_id)
            if failed.ticket_id is not None
            else None
        )
        if ticket is not None:
            text = f"delivery failed: {failed.error}"
            add_maild_event(tx, ticket, EventKind.BOUNCE, now, text, failed.message_id)
        outcome = notify.DeliveryFailedOutcome(
            ticket=view_of(tx, ticket) if ticket is not None else None,
            recipients=failed.recipients,
            error=failed.error,
            subject=failed.subject,
            failed_audience=_audience(failed.audience),
            supervisors=members(self.settings, tx.staff(), "supervisor"),
        )
        self.outbound.queue_all(tx, outcome, ticket, now)
        log.info(
            "ticket=%s msgid=%s delivery failure recorded",
            ticket.number if ticket is not None else "-",
            failed.message_id,
        )


def _audience(value: str) -> Audience:
    try:
        return Audience(value)
    except ValueError:  # a row written by another version: report it all the same
        return Audience.REQUESTER
