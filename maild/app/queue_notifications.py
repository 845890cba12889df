"""Use case: queue the notifications an outcome gives. No I/O of its own.

Runs inside the caller's transaction (a DeskSession), so a notification is
queued if and only if the change that causes it is committed. Who is told
what is decided in core/notify; here, before anything is rendered,
recipients outside the accepted domains who are not staff are dropped (the
Ticket Trick safety net), and automatic answers to people outside the staff
pass the per-address caps and the per-ticket ladder (core/notify decides);
a robot, or a sender asking for no automatic answer, gets none (core/robots);
while a ticket's sender is unverified (open_ticket), only staff are told.
Each mail gets its Message-ID here, bound to its ticket's token.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from maild.app.ports import MAILD, DeskSession, MessageBuilder, NewEvent, Renderer
from maild.app.staff import staff_addresses
from maild.config import Settings
from maild.core import notify, robots
from maild.core.addresses import valid_recipients
from maild.core.bounces import BounceFacts
from maild.domain import EventKind, InboundMail, Notification, OutboundMail, Ticket

log = logging.getLogger(__name__)


def own_message_id(token: str, domain: str) -> str:
    """A Message-ID for a mail about a ticket: its token, a random part, our domain."""
    return f"{token}.{secrets.token_hex(6)}@{domain}"


class Outbound:
    """Turns Notification values into queued outgoing mail within a transaction."""

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        build_message: MessageBuilder,
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.build_message = build_message
        self.domain = settings.from_address.rpartition("@")[2]
        self.caps = notify.Caps(
            settings.limits.auto_answers_per_hour, settings.limits.auto_answers_per_day
        )

    def queue_all(
        self,
        tx: DeskSession,
        outcome: notify.Outcome,
        ticket: Ticket | None,
        now: datetime,
        answering: InboundMail | None = None,
    ) -> None:
        """Queue every notification an outcome gives; none back to a robot.

        answering is the mail the outcome comes from: a sender that asks for
        no automatic answer, or a robot's address, gets none (core/robots).
        """
        every = notify.notifications_for(outcome, self.settings.helpdesk.pool_address)
        kept = robots.without_answers(every, answering)
        if answering is not None and kept != every:
            log.info(
                "msgid=%s no automatic answer to %s: a robot, or it asks for none",
                answering.message_id,
                answering.sender.address,
            )
        for notification in kept:
            self.queue(tx, notification, ticket, now)

    def queue(
        self,
        tx: DeskSession,
        notification: Notification,
        ticket: Ticket | None,
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
        data = self.build_message(
            outbound, self.settings.from_address, self.settings.helpdesk.name
        )
        tx.enqueue(outbound, data, ticket.id if ticket is not None else None, now)
        if ticket is not None:
            text = f"{notification.template} to {', '.join(to)}"
            tx.add_event(
                ticket.id,
                NewEvent(
                    EventKind.NOTIFIED, MAILD, now, text, message_id, is_internal=True
                ),
            )

    def mark_bounced(self, tx: DeskSession, bounce: BounceFacts) -> str | None:
        """Mark the notification a bounce reports as failed; return its Message-ID."""
        if not bounce.is_failure:
            return None  # "delayed": the relay is still trying
        said = ": ".join(p for p in (bounce.recipient, bounce.reason) if p)
        message_id = tx.mark_bounced(
            bounce.message_ids, f"bounced: {said or 'no reason given'}"
        )
        if message_id is not None:
            log.warning("msgid=%s bounced: %s", message_id, said or "-")
        return message_id

    def _within_caps(
        self,
        tx: DeskSession,
        notification: Notification,
        ticket: Ticket | None,
        now: datetime,
    ) -> tuple[str, ...]:
        """Drop the addresses a notification may not reach; record each answer."""
        staff = staff_addresses(self.settings, tx.staff())
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
        ticket: Ticket | None,
        staff: frozenset[str],
    ) -> tuple[str, ...]:
        """The recipients maild may mail at all: accepted domains, or staff."""
        accepted = self.settings.helpdesk.accepted_domains
        if ticket is not None and ticket.unverified_sender:
            return self._staff_only(notification, ticket, staff)
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

    def _staff_only(
        self, notification: Notification, ticket: Ticket, staff: frozenset[str]
    ) -> tuple[str, ...]:
        """The recipients on a ticket whose sender is unverified: staff alone
        (the pool among them)."""
        addresses = valid_recipients(notification.to)
        kept = tuple(a for a in addresses if a.lower() in staff)
        if len(kept) < len(addresses):
            log.warning(
                "ticket=%s %s to %s held: sender not verified (%s)",
                ticket.number,
                notification.template,
                ", ".join(a for a in addresses if a not in kept),
                ticket.unverified_sender,
            )
        return kept

    def _is_over_ladder(self, tx: DeskSession, ticket: Ticket, now: datetime) -> bool:
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


def _thread(
    tx: DeskSession, ticket: Ticket | None, in_reply_to: str
) -> tuple[str, ...]:
    """References: the mail that opened the ticket, then the one answered, so every
    mail about a ticket lands in one conversation in the reader's client."""
    opening = tx.opening_message_id(ticket.id) if ticket is not None else None
    return tuple(dict.fromkeys(m for m in (opening, in_reply_to) if m))
