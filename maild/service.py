"""Handling one mail: parse -> classify -> apply -> persist -> enqueue. Wiring only.

The decisions live in maild/core; the I/O in the adapters, reached through
the Protocols declared here. A mail is registered (and its attempt counted)
in its own commit before it is handled; its whole effect, outbox rows
included, is then written in one transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, assert_never

from maild.adapters.mailer import valid_recipients
from maild.adapters.models import EventRow, TicketRow, WatcherRow
from maild.adapters.store import FINAL_STATES, MailRecord, MailState, Store, Tx
from maild.config import Settings
from maild.core import notify
from maild.core.classify import (
    HelpdeskPolicy,
    Ignored,
    NewTicket,
    Outsider,
    Reply,
    classify,
    is_accepted,
)
from maild.core.fields import extract_fields
from maild.core.numbering import counter_name, ticket_day
from maild.core.parse import content_hash
from maild.core.sla import BusinessCalendar, add_business_time
from maild.domain import (
    EventKind,
    IgnoreReason,
    InboundMail,
    MailDisposition,
    MailOrigin,
    Notification,
    OutboundMail,
    Person,
    TicketNumber,
    TicketState,
    TicketType,
    TicketView,
    Urgency,
)
from maild.errors import MailRejected

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAILD = "maild"  # the actor of what the daemon does by itself


class MailParser(Protocol):
    def parse(self, raw: bytes, envelope_sender: str | None = None,
              envelope_recipients: tuple[str, ...] = ()) -> InboundMail: ...


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


class Service:
    """Turns mail into tickets, events and queued notifications."""

    def __init__(self, settings: Settings, store: Store, parser: MailParser,
                 renderer: Renderer, build_message: MessageBuilder,
                 clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.parser = parser
        self.renderer = renderer
        self.build_message = build_message
        self.clock = clock
        helpdesk = settings.helpdesk
        self.message_domain = settings.from_address.rpartition("@")[2]
        self.policy = HelpdeskPolicy(
            tag=helpdesk.tag, accepted_domains=helpdesk.accepted_domains,
            incident_address=helpdesk.incident_address,
            request_address=helpdesk.request_address,
            own_message_id_domain=self.message_domain)
        self.calendar = BusinessCalendar.from_policy(settings.sla)
        self.caps = notify.Caps(settings.limits.auto_answers_per_hour,
                                settings.limits.auto_answers_per_day)

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        """Handle one mail exactly once; say where it ends."""
        now = self.clock()
        record = self.store.register_mail(origin, content_hash(raw), "", "", raw, now)
        if record.state in FINAL_STATES:
            log.info("mail %s already handled (%s)", record.id, record.state)
            return _disposition(record.state)
        limits = self.settings.limits
        if record.attempts > limits.handling_attempts:
            return self._quarantine(record, f"handling failed {record.attempts - 1} "
                                    "times", now)
        if len(raw) > limits.max_mail_bytes:
            return self._quarantine(record, f"too_large: {len(raw)} bytes", now)
        try:
            mail = self.parser.parse(raw, origin.envelope_sender,
                                     origin.envelope_recipients)
        except MailRejected as exc:
            return self._quarantine(record, f"{exc.reason}: {exc}", now)
        return self._apply(record, mail, now)

    def quarantine(self, raw: bytes, origin: MailOrigin, reason: str
                   ) -> MailDisposition:
        """Quarantine a mail whose handling failed in an unexpected way."""
        now = self.clock()
        record = self.store.register_mail(origin, content_hash(raw), "", "", raw, now)
        return self._quarantine(record, reason, now)

    def _apply(self, record: MailRecord, mail: InboundMail, now: datetime
               ) -> MailDisposition:
        outcome = classify(mail, self.policy, self.store)
        log.info("mail %s msgid=%s classified as %s", record.id, mail.message_id,
                 type(outcome).__name__)
        match outcome:
            case NewTicket():
                return self._open_ticket(record, mail, outcome, now)
            case Reply():
                return self._record_reply(record, mail, outcome, now)
            case Ignored():
                return self._ignore(record, mail, outcome, now)
            case Outsider():
                return self._quarantine(record, f"outsider: {outcome.detail}", now,
                                        mail)
            case _:
                assert_never(outcome)

    def _quarantine(self, record: MailRecord, reason: str, now: datetime,
                    mail: InboundMail | None = None) -> MailDisposition:
        log.warning("mail %s quarantined: %s", record.id, reason)
        with self.store.transaction() as tx:
            tx.finish_mail(record.id, MailState.QUARANTINED, reason, None, now, mail)
        return MailDisposition.QUARANTINED

    def _ignore(self, record: MailRecord, mail: InboundMail, outcome: Ignored,
                now: datetime) -> MailDisposition:
        with self.store.transaction() as tx:
            ticket = (tx.ticket_by_number(outcome.ticket_number)
                      if outcome.ticket_number else None)
            if ticket is not None:
                kind = (EventKind.BOUNCE if outcome.reason is IgnoreReason.BOUNCE
                        else EventKind.AUTO_REPLY)
                self._event(tx, ticket.id, kind, mail.sender.address, now,
                            f"{outcome.reason}: {outcome.detail}", mail, record)
            tx.finish_mail(record.id, MailState.IGNORED,
                           f"{outcome.reason}: {outcome.detail}",
                           ticket.id if ticket else None, now, mail)
        return MailDisposition.DONE

    def _record_reply(self, record: MailRecord, mail: InboundMail, outcome: Reply,
                      now: datetime) -> MailDisposition:
        with self.store.transaction() as tx:
            ticket = tx.ticket_by_number(outcome.ticket_number)
            if ticket is None:
                raise LookupError(outcome.ticket_number)
            event = self._event(tx, ticket.id, EventKind.COMMENT, mail.sender.address,
                                now, mail.text, mail, record, is_internal=True)
            tx.add_attachments(ticket.id, event.id, mail.attachments)
            tx.finish_mail(record.id, MailState.DONE,
                           f"comment on {ticket.number}", ticket.id, now, mail)
        return MailDisposition.DONE

    def _open_ticket(self, record: MailRecord, mail: InboundMail,
                     outcome: NewTicket, now: datetime) -> MailDisposition:
        fields = extract_fields(mail.text)
        ticket_type = (outcome.ticket_type if outcome.is_type_from_address
                       else fields.ticket_type or TicketType.INCIDENT)
        urgency = fields.urgency or (Urgency.HIGH if mail.is_high_importance
                                     else Urgency.MEDIUM)
        beneficiary, note = self._beneficiary(mail.sender, fields.beneficiary)
        watchers = self._watchers(mail, beneficiary)
        due = add_business_time(now, self.settings.sla.callback[urgency],
                                self.calendar)
        with self.store.transaction() as tx:
            day = ticket_day(now, self.settings.sla.timezone)
            sequence = tx.next_sequence(counter_name(ticket_type, day))
            row = TicketRow(
                number=str(TicketNumber(ticket_type, day, sequence)),
                token=secrets.token_hex(12), ticket_type=ticket_type.value,
                status=TicketState.NEW.value, subject=mail.subject,
                description=fields.description, requester_name=mail.sender.name,
                requester_address=mail.sender.address,
                beneficiary_name=beneficiary.name,
                beneficiary_address=beneficiary.address,
                application=fields.application, urgency=urgency.value,
                phone=fields.phone, owner=None, created_at=now, callback_due_at=due,
                source_mail_id=record.id)
            tx.add(row)
            for watcher in watchers:
                tx.session.add(WatcherRow(ticket_id=row.id, name=watcher.name,
                                          address=watcher.address))
            event = self._event(tx, row.id, EventKind.CREATED, mail.sender.address,
                                now, mail.subject, mail, record)
            tx.add_attachments(row.id, event.id, mail.attachments)
            view = ticket_view(row, watchers, [a.filename for a in mail.attachments])
            opened = notify.TicketOpened(view, note, mail.message_id)
            for notification in notify.notifications_for(
                    opened, self.settings.helpdesk.pool_address):
                self._enqueue(tx, notification, row, now)
            tx.finish_mail(record.id, MailState.DONE, f"ticket {row.number}",
                           row.id, now, mail)
        log.info("ticket=%s opened msgid=%s", row.number, mail.message_id)
        return MailDisposition.DONE

    def _beneficiary(self, requester: Person, named: Person | None
                     ) -> tuple[Person, str]:
        if named is None or named.address == requester.address:
            return requester, ""
        if is_accepted(named.address, self.policy.accepted_domains):
            return named, ""
        return requester, f"beneficiary_outside:{named.address}"

    def _watchers(self, mail: InboundMail, beneficiary: Person
                  ) -> tuple[Person, ...]:
        helpdesk = self.settings.helpdesk
        own = {helpdesk.incident_address, helpdesk.request_address,
               helpdesk.pool_address, self.settings.from_address,
               mail.sender.address, beneficiary.address}
        seen: dict[str, Person] = {}
        for person in mail.cc:
            if person.address not in own and is_accepted(
                    person.address, self.policy.accepted_domains):
                seen.setdefault(person.address, person)
        return tuple(seen.values())

    def _event(self, tx: Tx, ticket_id: int, kind: EventKind, actor: str,
               now: datetime, text: str, mail: InboundMail | None,
               record: MailRecord | None, *, is_internal: bool = False) -> EventRow:
        return tx.add_event(EventRow(
            ticket_id=ticket_id, kind=kind.value, actor=actor, at=now, text=text,
            message_id=mail.message_id if mail else None, is_internal=is_internal,
            mail_id=record.id if record else None))

    def _enqueue(self, tx: Tx, notification: Notification, ticket: TicketRow,
                 now: datetime) -> None:
        to = self._within_caps(tx, notification, ticket, now)
        if not to:
            return
        rendered = self.renderer.render(notification)
        message_id = own_message_id(ticket.token, self.message_domain)
        outbound = OutboundMail(
            message_id=message_id, to=to, subject=rendered.subject,
            text=rendered.text, html=rendered.html,
            in_reply_to=notification.in_reply_to,
            references=(notification.in_reply_to,) if notification.in_reply_to
            else (),
            ticket_number=ticket.number, audience=notification.audience,
            is_capped=notification.is_capped)
        data = self.build_message(outbound, self.settings.from_address)
        tx.enqueue(outbound, data, ticket.id, now)
        self._event(tx, ticket.id, EventKind.NOTIFIED, MAILD, now,
                    f"{notification.template} to {', '.join(to)}", None, None,
                    is_internal=True).message_id = message_id

    def _within_caps(self, tx: Tx, notification: Notification, ticket: TicketRow,
                     now: datetime) -> tuple[str, ...]:
        """Drop the addresses an automatic answer may not reach; record each."""
        addresses = valid_recipients(notification.to)
        if not notification.is_capped:
            return addresses
        staff = self.staff_addresses(tx.staff())
        kept: list[str] = []
        for address in addresses:
            if address in staff:
                kept.append(address)
                continue
            is_held = notify.is_over_cap(
                tx.answers_since(address, now - timedelta(hours=1)),
                tx.answers_since(address, now - timedelta(days=1)), self.caps)
            tx.record_answer(address, now, is_held=is_held,
                             template=notification.template, ticket_id=ticket.id)
            if is_held:
                log.warning("ticket=%s answer to %s held back by the cap",
                            ticket.number, address)
            else:
                kept.append(address)
        return tuple(kept)

    def staff_addresses(self, added: dict[str, str]) -> frozenset[str]:
        """Staff from the configuration and those added with the CLI."""
        helpdesk = self.settings.helpdesk
        return frozenset((*helpdesk.technicians, *helpdesk.supervisors,
                          helpdesk.pool_address, *added))


def ticket_view(row: TicketRow, watchers: tuple[Person, ...] | list[Person],
                attachment_names: list[str]) -> TicketView:
    """Build the view of a ticket that notifications may show."""
    return TicketView(
        number=row.number, ticket_type=TicketType(row.ticket_type),
        status=TicketState(row.status), subject=row.subject,
        description=row.description,
        requester=Person(row.requester_name, row.requester_address),
        beneficiary=Person(row.beneficiary_name, row.beneficiary_address),
        application=row.application, urgency=Urgency(row.urgency), phone=row.phone,
        owner=row.owner, created_at=row.created_at,
        callback_due_at=row.callback_due_at, watchers=tuple(watchers),
        attachment_names=tuple(attachment_names))


def own_message_id(token: str, domain: str) -> str:
    """A Message-ID for a mail about a ticket: its token, a random part, our domain."""
    return f"{token}.{secrets.token_hex(6)}@{domain}"


def _disposition(state: MailState) -> MailDisposition:
    if state is MailState.QUARANTINED:
        return MailDisposition.QUARANTINED
    return MailDisposition.DONE
