"""Queueing notifications: caps, rendering, Message-IDs, outbox rows. Wiring only.

Runs inside the caller's transaction, so a notification is queued if and
only if the change that causes it is committed.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from maild.adapters.mailer import valid_recipients
from maild.adapters.models import EventRow, TicketRow
from maild.adapters.store import Tx
from maild.config import Settings
from maild.core import notify
from maild.domain import EventKind, Notification, OutboundMail

log = logging.getLogger(__name__)

MAILD = "maild"  # the actor of what the daemon does by itself


class Rendered(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...


class Renderer(Protocol):
    def render(self, notification: Notification) -> Rendered: ...


class MessageBuilder(Protocol):
    def __call__(self, mail: OutboundMail, from_address: str) -> bytes: ...


def own_message_id(token: str, domain: str) -> str:
    """A Message-ID for a mail about a ticket: its token, a random part, our domain."""
    return f"{token}.{secrets.token_hex(6)}@{domain}"


class Outbound:
    """Turns Notification values into outbox rows within a transaction."""

    def __init__(
        self, settings: Settings, renderer: Renderer, build_message: MessageBuilder
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.build_message = build_message
        self.domain = settings.from_address.rpartition("@")[2]
        self.caps = notify.Caps(
            settings.limits.auto_answers_per_hour, settings.limits.auto_answers_per_day
        )

    def queue_all(
        self, tx: Tx, outcome: notify.Outcome, ticket: TicketRow | None, now: datetime
    ) -> None:
        """Queue every notification an outcome gives."""
        for notification in notify.notifications_for(
            outcome, self.settings.helpdesk.pool_address
        ):
            self.queue(tx, notification, ticket, now)

    def queue(
        self,
        tx: Tx,
        notification: Notification,
        ticket: TicketRow | None,
        now: datetime,
    ) -> None:
        """Render and queue one notification, within the answer caps."""
        to = self._within_caps(tx, notification, ticket, now)
        if not to:
            return
        rendered = self.renderer.render(notification)
        token = ticket.token if ticket is not None else secrets.token_hex(12)
        message_id = own_message_id(token, self.domain)
        outbound = OutboundMail(
            message_id=message_id,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            in_reply_to=notification.in_reply_to,
            references=(notification.in_reply_to,) if notification.in_reply_to else (),
            ticket_number=ticket.number if ticket is not None else "",
            audience=notification.audience,
            is_capped=notification.is_capped,
            attachments=notification.attachments,
        )
        data = self.build_message(outbound, self.settings.from_address)
        tx.enqueue(outbound, data, ticket.id if ticket is not None else None, now)
        if ticket is not None:
            tx.add_event(
                EventRow(
                    ticket_id=ticket.id,
                    kind=EventKind.NOTIFIED.value,
                    actor=MAILD,
                    at=now,
                    text=f"{notification.template} to {', '.join(to)}",
                    message_id=message_id,
                    is_internal=True,
                )
            )

    def staff_addresses(self, tx: Tx) -> frozenset[str]:
        """Staff from the configuration and those added with the CLI."""
        helpdesk = self.settings.helpdesk
        return frozenset(
            (
                *helpdesk.technicians,
                *helpdesk.supervisors,
                helpdesk.pool_address,
                *tx.staff(),
            )
        )

    def _within_caps(
        self,
        tx: Tx,
        notification: Notification,
        ticket: TicketRow | None,
        now: datetime,
    ) -> tuple[str, ...]:
        """Drop the addresses an automatic answer may not reach; record each."""
        addresses = valid_recipients(notification.to)
        if not notification.is_capped:
            return addresses
        staff = self.staff_addresses(tx)
        kept: list[str] = []
        for address in addresses:
            if address.lower() in staff:
                kept.append(address)
                continue
            is_held = notify.is_over_cap(
                tx.answers_since(address, now - timedelta(hours=1)),
                tx.answers_since(address, now - timedelta(days=1)),
                self.caps,
            )
            tx.record_answer(
                address,
                now,
                is_held=is_held,
                template=notification.template,
                ticket_id=ticket.id if ticket is not None else None,
            )
            if is_held:
                log.warning(
                    "ticket=%s answer %s to %s held back by the cap",
                    ticket.number if ticket else "-",
                    notification.template,
                    address,
                )
            else:
                kept.append(address)
        return tuple(kept)
