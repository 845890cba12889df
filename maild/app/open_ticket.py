"""Use case: open a ticket from a new mail, confirm it, announce it to the pool.

The fields come from the mail (core/fields), the SLA timers from the
calendar (core/timers), who may be beneficiary and watcher from the
accepted domains (core/classify), who is told from core/notify. The ticket,
its watchers, its first event, its attachments and the notifications are
written in one transaction; a sender over `limits.new_tickets_per_hour` gets
no ticket: the mail is quarantined and its sender told once an hour.

With trusted Authentication-Results configured, a sender the trusted MTA
does not vouch for still gets a ticket (a person may be behind a broken
forwarder), but the ticket keeps the verdict: staff see it in the
announcement and the history, and nothing goes to the requester, the
beneficiary or the watchers until a staff member writes on the ticket.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from maild.app.identity import sender_identity
from maild.app.ports import MAILD, DeskSession, NewEvent
from maild.app.queue_notifications import Outbound
from maild.app.staff import staff_role
from maild.config import Settings
from maild.core import notify
from maild.core.addresses import is_accepted, is_plain_mailbox
from maild.core.classify import NewTicket
from maild.core.fields import extract_fields
from maild.core.numbering import counter_name, ticket_day
from maild.core.sla import BusinessCalendar
from maild.core.tickets import ticket_view
from maild.core.timers import timers_for_new
from maild.domain import (
    EventKind,
    InboundMail,
    MailRecord,
    MailState,
    Person,
    Ticket,
    TicketFields,
    TicketNumber,
    TicketState,
    TicketType,
    Urgency,
)

log = logging.getLogger(__name__)

HELD_TEMPLATE = "new_ticket_held"


@dataclass(frozen=True, slots=True)
class Held:
    """A new ticket its sender's cap held back: the mail is quarantined, why."""

    reason: str


class OpenTicket:
    """Opens a ticket in the caller's transaction."""

    def __init__(
        self, settings: Settings, outbound: Outbound, calendar: BusinessCalendar
    ) -> None:
        self.settings = settings
        self.outbound = outbound
        self.calendar = calendar
        helpdesk = settings.helpdesk
        self.own_addresses = frozenset(
            (
                helpdesk.incident_address,
                helpdesk.request_address,
                helpdesk.pool_address,
                settings.from_address,
            )
        )

    def open(
        self,
        tx: DeskSession,
        record: MailRecord,
        mail: InboundMail,
        new: NewTicket,
        now: datetime,
    ) -> Ticket | Held:
        """Open the ticket; return it, or why the sender's cap held it back."""
        held = self._held_back(tx, record, mail, now)
        if held is not None:
            return held
        fields = extract_fields(mail.text)
        beneficiary, note = self._beneficiary(mail.sender, fields.beneficiary)
        ticket = self._ticket(tx, record, mail, new, fields, beneficiary, now)
        identity = sender_identity(self.settings, mail, ticket.number)
        if not identity.is_verified:
            ticket = replace(ticket, unverified_sender=identity.detail)
        ticket = tx.add_ticket(ticket)
        watchers = self._watchers(mail, ticket.beneficiary)
        tx.add_watchers(ticket.id, watchers)
        event_id = tx.add_event(
            ticket.id,
            NewEvent(
                EventKind.CREATED,
                mail.sender.address,
                now,
                mail.subject,
                mail.message_id,
                mail_id=record.id,
            ),
        )
        tx.add_attachments(ticket.id, event_id, mail.attachments)
        if ticket.unverified_sender:
            self._hold(tx, ticket, mail, now)
        view = ticket_view(ticket, watchers, [a.filename for a in mail.attachments])
        opened = notify.TicketOpened(view, *note, mail.message_id)
        self.outbound.queue_all(tx, opened, ticket, now, mail)
        tx.finish_mail(
            record.id, MailState.DONE, f"ticket {ticket.number}", ticket.id, now, mail
        )
        return ticket

    def _ticket(
        self,
        tx: DeskSession,
        record: MailRecord,
        mail: InboundMail,
        new: NewTicket,
        fields: TicketFields,
        beneficiary: Person,
        now: datetime,
    ) -> Ticket:
        ticket_type = (
            new.ticket_type
            if new.is_type_from_address
            else fields.ticket_type or TicketType.INCIDENT
        )
        urgency = fields.urgency or (
            Urgency.HIGH if mail.is_high_importance else Urgency.MEDIUM
        )
        timers = timers_for_new(now, urgency, self.settings.sla, self.calendar)
        day = ticket_day(now, self.settings.sla.timezone)
        sequence = tx.next_sequence(counter_name(ticket_type, day))
        return Ticket(
            id=0,
            number=str(TicketNumber(ticket_type, day, sequence)),
            token=secrets.token_hex(12),
            ticket_type=ticket_type,
            status=TicketState.NEW,
            subject=mail.subject,
            description=fields.description,
            requester=mail.sender,
            beneficiary=beneficiary,
            application=fields.application,
            urgency=urgency,
            phone=fields.phone,
            owner=None,
            created_at=now,
            callback_due_at=timers.breach_at,
            timers=timers,
            source_mail_id=record.id,
        )

    def _hold(
        self, tx: DeskSession, ticket: Ticket, mail: InboundMail, now: datetime
    ) -> None:
        """Say in the history why only staff are told."""
        text = (
            f"sender not verified ({ticket.unverified_sender}): nothing goes to "
            "the requester, the beneficiary or the watchers until staff write "
            "on this ticket"
        )
        note = NewEvent(
            EventKind.NOTE, MAILD, now, text, mail.message_id, is_internal=True
        )
        tx.add_event(ticket.id, note)

    def _beneficiary(
        self, requester: Person, named: Person | None
    ) -> tuple[Person, tuple[str, str]]:
        """The beneficiary, and the note code saying why a named one was not taken."""
        if named is None or named.address == requester.address:
            return requester, ("", "")
        if named.address in self.own_addresses or not is_plain_mailbox(named.address):
            return requester, (notify.BENEFICIARY_REFUSED, named.address)
        if is_accepted(named.address, self.settings.helpdesk.accepted_domains):
            return named, ("", "")
        return requester, (notify.BENEFICIARY_OUTSIDE, named.address)

    def _watchers(self, mail: InboundMail, beneficiary: Person) -> tuple[Person, ...]:
        own = {*self.own_addresses, mail.sender.address, beneficiary.address}
        seen: dict[str, Person] = {}
        for person in mail.cc:
            if person.address not in own and is_accepted(
                person.address, self.settings.helpdesk.accepted_domains
            ):
                seen.setdefault(person.address, person)
        return tuple(seen.values())

    def _held_back(
        self, tx: DeskSession, record: MailRecord, mail: InboundMail, now: datetime
    ) -> Held | None:
        """Hold a new ticket back when its sender opened too many this hour.

        Staff are exempt. The mail is quarantined with its reason (an admin
        may retry it), and its sender is told once an hour, not per mail.
        """
        sender = mail.sender.address
        cap = self.settings.limits.new_tickets_per_hour
        if staff_role(sender, self.settings, tx.staff()) is not None:
            return None
        hour_ago = now - timedelta(hours=1)
        opened = tx.tickets_opened_since(sender, hour_ago)
        if opened < cap:
            return None
        reason = f"new_tickets_per_hour: {opened} tickets opened by {sender} this hour"
        tx.finish_mail(record.id, MailState.QUARANTINED, reason, None, now, mail)
        if not tx.was_answered_since(sender, HELD_TEMPLATE, hour_ago):
            # Recorded as an answer, so that it goes once an hour; not capped,
            # or the answers the sender's tickets took would silence it.
            tx.record_answer(
                sender, now, is_held=False, template=HELD_TEMPLATE, ticket_id=None
            )
            held = notify.NewTicketHeld(sender, mail.subject, opened, mail.message_id)
            self.outbound.queue_all(tx, held, None, now, mail)
        return Held(reason)
