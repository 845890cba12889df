"""Use case: a delivery failed for good — note it on its ticket, tell supervisors.

`RecordDeliveryFailure.record` is the outbox sender's `on_failed` hook: it
runs inside the transaction that marks the outgoing mail failed, so the
`bounce` event on the ticket and the report to the supervisors are written
if and only if that is. Who is told is decided in core/notify (never a
report of a report).
"""

from __future__ import annotations

import logging
from datetime import datetime

from maild.app.ports import MAILD, DeskSession, NewEvent
from maild.app.queue_notifications import Outbound
from maild.app.staff import members
from maild.config import Settings
from maild.core import notify
from maild.core.tickets import ticket_view
from maild.domain import Audience, EventKind, FailedDelivery, Role

log = logging.getLogger(__name__)


class RecordDeliveryFailure:
    def __init__(self, settings: Settings, outbound: Outbound) -> None:
        self.settings = settings
        self.outbound = outbound

    def record(self, tx: DeskSession, failed: FailedDelivery, now: datetime) -> None:
        """Note a failed delivery on its ticket and queue the supervisors' report."""
        ticket = (
            tx.ticket_by_id(failed.ticket_id) if failed.ticket_id is not None else None
        )
        view = None
        if ticket is not None:
            text = f"delivery failed: {failed.error}"
            tx.add_event(
                ticket.id,
                NewEvent(
                    EventKind.BOUNCE,
                    MAILD,
                    now,
                    text,
                    failed.message_id,
                    is_internal=True,
                ),
            )
            view = ticket_view(
                ticket, tx.watchers(ticket.id), tx.attachment_names(ticket.id)
            )
        outcome = notify.DeliveryFailedOutcome(
            ticket=view,
            recipients=failed.recipients,
            error=failed.error,
            subject=failed.subject,
            failed_audience=_audience(failed.audience),
            supervisors=members(self.settings, tx.staff(), Role.SUPERVISOR),
        )
        self.outbound.queue_all(tx, outcome, ticket, now)
        log.debug(  # the outbox sender logs the failure itself, at WARNING
            "delivery failure recorded",
            extra={
                "ticket": ticket.number if ticket is not None else None,
                "msgid": failed.message_id,
            },
        )


def _audience(value: str) -> Audience:
    try:
        return Audience(value)
    except ValueError:  # a row written by another version: report it all the same
        return Audience.REQUESTER
