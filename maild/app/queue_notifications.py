"""Queueing notifications: caps, rendering, Message-IDs, outbox rows. Wiring only.

Runs inside the caller's transaction, so a notification is queued if and
only if the change that causes it is committed. Before anything is rendered,
recipients outside the accepted domains who are not staff are dropped (the
Ticket Trick safety net), and automatic answers to people outside the staff
pass the per-address caps and the per-ticket ladder (core/notify decides).
A bounce of a notification marks its outbox row failed.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select

from maild.adapters.database.models import OutboxRow, TicketRow
from maild.adapters.database.store import Tx
from maild.adapters.database.ticket_rows import add_maild_event
from maild.adapters.outgoing.mime import valid_recipients
from maild.config import Settings
from maild.core import notify
from maild.core.bounces import BounceFacts
from maild.domain import EventKind, Notification, OutboundMail

log = logging.getLogger(__name__)


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
            references=_thread(tx, ticket, notification.in_reply_to),
            ticket_number=ticket.number if ticket is not None else "",
            audience=notification.audience,
            is_capped=notification.is_capped,
            attachments=notification.attachments,
        )
        data = self.build_message(outbound, self.settings.from_address)
        tx.enqueue(outbound, data, ticket.id if ticket is not None else None, now)
        if ticket is not None:
            text = f"{notification.template} to {', '.join(to)}"
            add_maild_event(tx, ticket, EventKind.NOTIFIED, now, text, message_id)

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

    def mark_bounced(self, tx: Tx, bounce: BounceFacts) -> str | None:
        """Mark the notification a bounce reports as failed; return its Message-ID."""
        if not bounce.is_failure:
            return None  # "delayed": the relay is still trying
        for message_id in bounce.message_ids:
            row = tx.session.execute(
                select(OutboxRow).where(OutboxRow.message_id == message_id)
            ).scalar_one_or_none()
            if row is not None:
                said = ": ".join(p for p in (bounce.recipient, bounce.reason) if p)
                row.state = "failed"
                row.last_error = f"bounced: {said or 'no reason given'}"
                log.warning("msgid=%s bounced: %s", message_id, said or "-")
                return message_id
        return None

    def _within_caps(
        self,
        tx: Tx,
        notification: Notification,
        ticket: TicketRow | None,
        now: datetime,
    ) -> tuple[str, ...]:
        """Drop the addresses a notification may not reach; record each answer."""
        staff = self.staff_addresses(tx)
        addresses = self._reachable(notification, ticket, staff)
        if not notification.is_capped:
            return addresses
        is_laddered: bool | None = None  # asked once, and only if anyone is capped
        kept: list[str] = []
        for address in addresses:
            if address.lower() in staff:
                kept.append(address)
                continue
            if is_laddered is None:
                is_laddered = ticket is not None and self._is_over_ladder(
                    tx, ticket, now
                )
            day, hour = tx.answers_since(
                (now - timedelta(days=1), now - timedelta(hours=1)), address=address
            )
            is_held = is_laddered or notify.is_over_cap(hour, day, self.caps)
            tx.record_answer(
                address,
                now,
                is_held=is_held,
                template=notification.template,
                ticket_id=ticket.id if ticket is not None else None,
            )
            if is_held:
                log.warning(
                    "ticket=%s answer %s to %s held back by the %s",
                    ticket.number if ticket else "-",
                    notification.template,
                    address,
                    "ticket's answer ladder" if is_laddered else "cap",
                )
            else:
                kept.append(address)
        return tuple(kept)

    def _reachable(
        self,
        notification: Notification,
        ticket: TicketRow | None,
        staff: frozenset[str],
    ) -> tuple[str, ...]:
        """The recipients maild may mail at all: accepted domains, or staff."""
        accepted = self.settings.helpdesk.accepted_domains
        kept: list[str] = []
        for address in valid_recipients(notification.to):
            if notify.may_receive(address, accepted, staff):
                kept.append(address)
            else:
                log.warning(
                    "ticket=%s %s to %s dropped: outside the accepted domains",
                    ticket.number if ticket else "-",
                    notification.template,
                    address,
                )
        return tuple(kept)

    def _is_over_ladder(self, tx: Tx, ticket: TicketRow, now: datetime) -> bool:
        limits = self.settings.limits
        hour, ten_minutes = tx.answers_since(
            (now - timedelta(hours=1), now - timedelta(minutes=10)), ticket_id=ticket.id
        )
        return notify.is_over_ladder(
            ten_minutes,
            hour,
            limits.ticket_answers_per_10_minutes,
            limits.ticket_answers_per_hour,
        )


def _thread(tx: Tx, ticket: TicketRow | None, in_reply_to: str) -> tuple[str, ...]:
    """References: the mail that opened the ticket, then the one answered, so every
    mail about a ticket lands in one conversation in the reader's client."""
    opening = tx.opening_message_id(ticket.id) if ticket is not None else None
    return tuple(dict.fromkeys(m for m in (opening, in_reply_to) if m))
