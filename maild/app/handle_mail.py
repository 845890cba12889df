"""Handling one mail: parse -> classify -> apply -> persist -> enqueue. Wiring only.

The decisions live in maild/core; the I/O in the adapters, reached through
the Protocols declared here and in maild/outbound.py. A mail is parsed in a
worker process, then registered (and its attempt counted) in its own commit
before it is applied; its whole effect, outbox rows included, is then written
in one transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, assert_never

from sqlalchemy import select

from maild.adapters.database.models import TicketRow
from maild.adapters.database.store import Store, Tx
from maild.adapters.database.ticket_rows import (
    add_mail_event,
    add_watchers,
    set_timers,
    ticket_view,
    view_of,
)
from maild.app.apply_reply import ReplyWork, role_for_help, staff_role
from maild.app.fire_timers import SlaDesk
from maild.app.queue_notifications import MessageBuilder, Outbound, Renderer
from maild.config import Settings
from maild.core import notify
from maild.core.classify import (
    CommandMail,
    HelpdeskPolicy,
    Ignored,
    NewTicket,
    Outsider,
    Reply,
    classify,
    is_accepted,
    is_plain_mailbox,
)
from maild.core.commands import SubjectCommand
from maild.core.fields import extract_fields
from maild.core.limits import REFUSAL_REASONS
from maild.core.numbering import counter_name, ticket_day
from maild.core.parse import content_hash, head_of
from maild.core.permissions import Actor, StaffRole
from maild.core.sla import BusinessCalendar
from maild.core.timers import timers_for_new
from maild.domain import (
    FINAL_STATES,
    EventKind,
    IgnoreReason,
    InboundMail,
    MailDisposition,
    MailOrigin,
    MailRecord,
    MailState,
    Person,
    Role,
    TicketNumber,
    TicketState,
    TicketType,
    TicketView,
    Urgency,
)
from maild.errors import (
    MailAlreadyFinished,
    MailRejected,
    MailTooLarge,
    StoreUnavailable,
    TransientError,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class MailParser(Protocol):
    def parse(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> InboundMail: ...


class Service:
    """Turns mail into tickets, events and queued notifications."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        parser: MailParser,
        renderer: Renderer,
        build_message: MessageBuilder,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.parser = parser
        self.clock = clock
        self.outbound = Outbound(settings, renderer, build_message)
        self.calendar = BusinessCalendar.from_policy(settings.sla)
        self.replies = ReplyWork(settings, self.outbound, self.calendar)
        self.sla = SlaDesk(settings, store, self.outbound, self.calendar)
        # Mails whose attempt a temporary failure should not have cost, when the
        # database could not take it back at the time.
        self._owed_refunds: set[int] = set()
        helpdesk = settings.helpdesk
        self.policy = HelpdeskPolicy(
            tag=helpdesk.tag,
            accepted_domains=helpdesk.accepted_domains,
            incident_address=helpdesk.incident_address,
            request_address=helpdesk.request_address,
            own_message_id_domain=self.outbound.domain,
            own_address=settings.from_address,
            staff=frozenset((*helpdesk.technicians, *helpdesk.supervisors)),
        )

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        """Handle one mail exactly once; say where it ends.

        The mail is parsed first, in a worker process that nothing it holds
        can bring down, and then its attempt is counted in a commit of its
        own, so a mail that kills the process is quarantined after a few; a
        TransientError (database or server unavailable) gives the attempt back
        and reaches the caller, who keeps the mail and tries later.
        """
        now = self.clock()
        parsed = self._parse(raw, origin)
        digest = (
            parsed.content_hash  # the worker hashed it: not twice
            if isinstance(parsed, InboundMail)
            else content_hash(raw)
        )
        record = self._register(raw, origin, digest, now)
        try:
            return self._handle_registered(raw, origin, record, parsed, now)
        except MailAlreadyFinished as exc:  # the same bytes, handled meanwhile
            log.info("mail %s handled meanwhile (%s)", record.id, exc.state)
            return _disposition(exc.state)
        except TransientError:
            self._give_back(record.id)
            raise

    def _parse(self, raw: bytes, origin: MailOrigin) -> InboundMail | MailRejected:
        size = max(len(raw), origin.size or 0)  # IMAP announces it: not fetched
        try:
            if size > self.settings.limits.max_mail_bytes:
                raise MailTooLarge(f"{size} bytes")
            return self.parser.parse(
                raw, origin.envelope_sender, origin.envelope_recipients
            )
        except MailRejected as exc:
            return exc

    def _register(
        self, raw: bytes, origin: MailOrigin, digest: str, now: datetime
    ) -> MailRecord:
        record = self.store.register_mail(origin, digest, "", "", raw, now)
        if record.id in self._owed_refunds:  # the database was down at the time
            self._owed_refunds.discard(record.id)
            record = self.store.refund_attempt(record.id)
        return record

    def _give_back(self, mail_id: int) -> None:
        try:
            self.store.refund_attempt(mail_id)
        except StoreUnavailable:
            self._owed_refunds.add(mail_id)  # taken back at the next attempt

    def _handle_registered(
        self,
        raw: bytes,
        origin: MailOrigin,
        record: MailRecord,
        parsed: InboundMail | MailRejected,
        now: datetime,
    ) -> MailDisposition:
        if record.state in FINAL_STATES:
            log.info("mail %s already handled (%s)", record.id, record.state)
            return _disposition(record.state)
        if record.attempts > self.settings.limits.handling_attempts:
            return self._quarantine(
                record, f"handling failed {record.attempts - 1} times", now
            )
        if isinstance(parsed, MailRejected):
            reason = f"{parsed.reason}: {parsed}"
            return self._quarantine(
                record, reason, now, notice=self._refusal(raw, origin, parsed)
            )
        return self._apply(record, parsed, now)

    def check_sla(self, now: datetime) -> int:
        """Fire the SLA timers due at now; the scheduler's only call."""
        return self.sla.check(now)

    def quarantine(
        self, raw: bytes, origin: MailOrigin, reason: str
    ) -> MailDisposition:
        """Quarantine a mail whose handling failed in an unexpected way."""
        now = self.clock()
        record = self.store.register_mail(origin, content_hash(raw), "", "", raw, now)
        if record.state in FINAL_STATES:
            return _disposition(record.state)
        try:
            return self._quarantine(record, reason, now)
        except MailAlreadyFinished as exc:
            return _disposition(exc.state)

    def _apply(
        self, record: MailRecord, mail: InboundMail, now: datetime
    ) -> MailDisposition:
        outcome = classify(mail, self.policy, self.store)
        log.info(
            "mail %s msgid=%s classified as %s",
            record.id,
            mail.message_id,
            type(outcome).__name__,
        )
        match outcome:
            case NewTicket():
                return self._open_ticket(record, mail, outcome, now)
            case Reply():
                return self._reply(record, mail, outcome, now)
            case CommandMail():
                return self._command_mail(record, mail, outcome, now)
            case Ignored():
                return self._ignore(record, mail, outcome, now)
            case Outsider():
                return self._quarantine(
                    record, f"outsider: {outcome.detail}", now, mail
                )
            case _:
                assert_never(outcome)

    def _quarantine(
        self,
        record: MailRecord,
        reason: str,
        now: datetime,
        mail: InboundMail | None = None,
        notice: notify.MailRefused | None = None,
    ) -> MailDisposition:
        log.warning("mail %s quarantined: %s", record.id, reason)
        with self.store.transaction() as tx:
            tx.finish_mail(record.id, MailState.QUARANTINED, reason, None, now, mail)
            if notice is not None:
                self.outbound.queue_all(tx, notice, None, now)
        return MailDisposition.QUARANTINED

    def _refusal(
        self, raw: bytes, origin: MailOrigin, exc: MailRejected
    ) -> notify.MailRefused | None:
        """Tell a refused mail's sender why, unless a machine or an outsider sent it."""
        if exc.reason not in REFUSAL_REASONS:
            return None  # a loop, say: never answered
        head = head_of(raw, origin.envelope_sender, origin.envelope_recipients)
        sender = head.sender.address
        kind = classify(head, self.policy, self.store)
        if isinstance(kind, Ignored | Outsider) or not is_accepted(
            sender, self.policy.accepted_domains
        ):
            return None
        return notify.MailRefused(sender, exc.reason, head.subject, head.message_id)

    def _ignore(
        self, record: MailRecord, mail: InboundMail, outcome: Ignored, now: datetime
    ) -> MailDisposition:
        reason = f"{outcome.reason}: {outcome.detail}"
        with self.store.transaction() as tx:
            ticket = (
                tx.ticket_by_number(outcome.ticket_number)
                if outcome.ticket_number
                else None
            )
            if ticket is not None:
                kind = (
                    EventKind.BOUNCE
                    if outcome.reason is IgnoreReason.BOUNCE
                    else EventKind.AUTO_REPLY
                )
                add_mail_event(
                    tx, ticket, kind, mail.sender.address, now, reason, mail, record.id
                )
            if outcome.bounce is not None:  # the notification it reports failed
                self.outbound.mark_bounced(tx, outcome.bounce)
            tx.finish_mail(
                record.id,
                MailState.IGNORED,
                reason,
                ticket.id if ticket else None,
                now,
                mail,
            )
        return MailDisposition.DONE

    def _reply(
        self, record: MailRecord, mail: InboundMail, outcome: Reply, now: datetime
    ) -> MailDisposition:
        with self.store.transaction() as tx:
            ticket = tx.ticket_by_number(outcome.ticket_number, for_update=True)
            if ticket is None:
                raise LookupError(outcome.ticket_number)
            summary = self.replies.apply(tx, ticket, mail, record.id, now)
            tx.finish_mail(record.id, MailState.DONE, summary, ticket.id, now, mail)
        log.info(
            "ticket=%s msgid=%s %s", outcome.ticket_number, mail.message_id, summary
        )
        return MailDisposition.DONE

    def _command_mail(
        self, record: MailRecord, mail: InboundMail, outcome: CommandMail, now: datetime
    ) -> MailDisposition:
        with self.store.transaction() as tx:
            actor = Actor(
                mail.sender.address,
                staff_role(mail.sender.address, self.settings, tx.staff()),
            )
            role = role_for_help(actor)
            answer: notify.Outcome
            match outcome.command:
                case SubjectCommand.HELP:
                    answer = notify.HelpAsked(actor.address, role, mail.message_id)
                case SubjectCommand.LIST:
                    answer = notify.ListAsked(
                        actor.address,
                        role,
                        self._open_tickets(tx, actor, role),
                        mail.message_id,
                    )
                case _:
                    assert_never(outcome.command)
            self.outbound.queue_all(tx, answer, None, now)
            tx.finish_mail(
                record.id,
                MailState.DONE,
                f"{outcome.command} answered",
                None,
                now,
                mail,
            )
        return MailDisposition.DONE

    def _open_tickets(self, tx: Tx, actor: Actor, role: Role) -> tuple[TicketView, ...]:
        """The open tickets a LIST answer shows, most urgent deadline first."""
        stmt = (
            select(TicketRow)
            .where(TicketRow.status != TicketState.CLOSED.value)
            .order_by(TicketRow.callback_due_at, TicketRow.id)
            .limit(200)
        )
        address = actor.address
        if role is Role.TECHNICIAN:
            stmt = stmt.where((TicketRow.owner == address) | TicketRow.owner.is_(None))
        elif role is Role.REQUESTER:
            stmt = stmt.where(
                (TicketRow.requester_address == address)
                | (TicketRow.beneficiary_address == address)
            )
        return tuple(view_of(tx, row) for row in tx.session.execute(stmt).scalars())

    def _open_ticket(
        self, record: MailRecord, mail: InboundMail, outcome: NewTicket, now: datetime
    ) -> MailDisposition:
        fields = extract_fields(mail.text)
        ticket_type = (
            outcome.ticket_type
            if outcome.is_type_from_address
            else fields.ticket_type or TicketType.INCIDENT
        )
        urgency = fields.urgency or (
            Urgency.HIGH if mail.is_high_importance else Urgency.MEDIUM
        )
        beneficiary, note = self._beneficiary(mail.sender, fields.beneficiary)
        watchers = self._watchers(mail, beneficiary)
        timers = timers_for_new(now, urgency, self.settings.sla, self.calendar)
        with self.store.transaction() as tx:
            if self._is_over_new_ticket_cap(tx, record, mail, now):
                return MailDisposition.QUARANTINED
            day = ticket_day(now, self.settings.sla.timezone)
            sequence = tx.next_sequence(counter_name(ticket_type, day))
            row = TicketRow(
                number=str(TicketNumber(ticket_type, day, sequence)),
                token=secrets.token_hex(12),
                ticket_type=ticket_type.value,
                status=TicketState.NEW.value,
                subject=mail.subject,
                description=fields.description,
                requester_name=mail.sender.name,
                requester_address=mail.sender.address,
                beneficiary_name=beneficiary.name,
                beneficiary_address=beneficiary.address,
                application=fields.application,
                urgency=urgency.value,
                phone=fields.phone,
                owner=None,
                created_at=now,
                callback_due_at=timers.breach_at,
                source_mail_id=record.id,
            )
            set_timers(row, timers)
            tx.add_ticket(row)
            add_watchers(tx, row, watchers)
            event_id = add_mail_event(
                tx,
                row,
                EventKind.CREATED,
                mail.sender.address,
                now,
                mail.subject,
                mail,
                record.id,
            )
            tx.add_attachments(row.id, event_id, mail.attachments)
            view = ticket_view(row, watchers, [a.filename for a in mail.attachments])
            self.outbound.queue_all(
                tx, notify.TicketOpened(view, *note, mail.message_id), row, now
            )
            tx.finish_mail(
                record.id, MailState.DONE, f"ticket {row.number}", row.id, now, mail
            )
        log.info("ticket=%s opened msgid=%s", row.number, mail.message_id)
        return MailDisposition.DONE

    def _beneficiary(
        self, requester: Person, named: Person | None
    ) -> tuple[Person, tuple[str, str]]:
        if named is None or named.address == requester.address:
            return requester, ("", "")
        if named.address in self._own_addresses() or not is_plain_mailbox(
            named.address
        ):
            return requester, ("beneficiary_refused", named.address)
        if is_accepted(named.address, self.policy.accepted_domains):
            return named, ("", "")
        return requester, ("beneficiary_outside", named.address)

    def _own_addresses(self) -> frozenset[str]:
        """The helpdesk's own addresses: never a beneficiary or a watcher."""
        helpdesk = self.settings.helpdesk
        return frozenset(
            (
                helpdesk.incident_address,
                helpdesk.request_address,
                helpdesk.pool_address,
                self.settings.from_address,
            )
        )

    def _watchers(self, mail: InboundMail, beneficiary: Person) -> tuple[Person, ...]:
        own = {*self._own_addresses(), mail.sender.address, beneficiary.address}
        seen: dict[str, Person] = {}
        for person in mail.cc:
            if person.address not in own and is_accepted(
                person.address, self.policy.accepted_domains
            ):
                seen.setdefault(person.address, person)
        return tuple(seen.values())

    def _is_over_new_ticket_cap(
        self, tx: Tx, record: MailRecord, mail: InboundMail, now: datetime
    ) -> bool:
        """Hold a new ticket back when its sender opened too many this hour.

        Staff are exempt. The mail is quarantined with its reason (an admin
        may retry it), and its sender is told once an hour, not per mail.
        """
        sender = mail.sender.address
        cap = self.settings.limits.new_tickets_per_hour
        if staff_role(sender, self.settings, tx.staff()) is not StaffRole.NONE:
            return False
        hour_ago = now - timedelta(hours=1)
        opened = tx.tickets_opened_since(sender, hour_ago)
        if opened < cap:
            return False
        reason = f"new_tickets_per_hour: {opened} tickets opened by {sender} this hour"
        log.warning("mail %s quarantined: %s", record.id, reason)
        tx.finish_mail(record.id, MailState.QUARANTINED, reason, None, now, mail)
        if not tx.was_answered_since(sender, "new_ticket_held", hour_ago):
            held = notify.NewTicketHeld(sender, mail.subject, opened, mail.message_id)
            self.outbound.queue_all(tx, held, None, now)
        return True


def _disposition(state: MailState) -> MailDisposition:
    if state is MailState.QUARANTINED:
        return MailDisposition.QUARANTINED
    return MailDisposition.DONE
