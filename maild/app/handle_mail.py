"""Use case: handle one mail — register, parse, classify, then the case it is.

The path of a mail: the intake (SMTP or IMAP adapter) hands its bytes here;
it is parsed in a worker process (the MailParser port), registered and its
attempt counted in a commit of its own, classified (core/classify), and
then one use case writes its whole effect in one transaction: a new ticket
(open_ticket), a reply (apply_reply), HELP/LIST (answer_command_mail), an
ignored robot mail (recorded on its ticket), or a quarantine with its
reason. The notifications are queued in that same transaction
(queue_notifications); the sender process delivers them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import assert_never

from maild.app.answer_command_mail import AnswerCommandMail
from maild.app.apply_reply import ApplyReply
from maild.app.fire_timers import FireTimers
from maild.app.open_ticket import Held, OpenTicket
from maild.app.ports import (
    Clock,
    DeskStore,
    MailParser,
    MessageBuilder,
    NewEvent,
    Renderer,
)
from maild.app.queue_notifications import Outbound
from maild.app.send_digests import SendDigests
from maild.config import Settings
from maild.core import notify
from maild.core.addresses import is_accepted
from maild.core.classify import (
    CommandMail,
    HelpdeskPolicy,
    Ignored,
    NewTicket,
    Outsider,
    Reply,
    classify,
)
from maild.core.limits import REFUSAL_REASONS
from maild.core.parse import content_hash, head_of
from maild.core.sla import BusinessCalendar
from maild.domain import (
    FINAL_STATES,
    EventKind,
    IgnoreReason,
    InboundMail,
    MailDisposition,
    MailOrigin,
    MailOutcome,
    MailRecord,
    MailState,
)
from maild.errors import (
    MailAlreadyFinished,
    MailRejected,
    MailTooLarge,
    StoreUnavailable,
    TransientError,
)

log = logging.getLogger(__name__)


class HandleMail:
    """Turns mail into tickets, events and queued notifications."""

    def __init__(
        self,
        settings: Settings,
        store: DeskStore,
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
        calendar = BusinessCalendar.from_policy(settings.sla)
        self.open_ticket = OpenTicket(settings, self.outbound, calendar)
        self.apply_reply = ApplyReply(settings, self.outbound, calendar)
        self.answer_command = AnswerCommandMail(settings, self.outbound)
        self.timers = FireTimers(settings, store, self.outbound, calendar)
        self.digests = SendDigests(settings, store, self.outbound, calendar)
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
            log.info(
                "mail handled meanwhile", extra={"mail": record.id, "state": exc.state}
            )
            return _disposition(exc.state)
        except TransientError:
            self._give_back(record.id)
            raise

    def check_sla(self, now: datetime) -> int:
        """Fire the SLA timers due at now, then the digests; the scheduler's call."""
        return self.timers.fire(now) + self.digests.send(now)

    def quarantine(
        self, raw: bytes, origin: MailOrigin, reason: str
    ) -> MailDisposition:
        """Quarantine a mail whose handling failed in an unexpected way."""
        now = self.clock()
        record = self.store.register_mail(origin, content_hash(raw), raw, now)
        if record.state in FINAL_STATES:
            return _disposition(record.state)
        head = head_of(raw, origin.envelope_sender, origin.envelope_recipients)
        try:
            return self._quarantine(record, reason, now, head)
        except MailAlreadyFinished as exc:
            return _disposition(exc.state)

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
        record = self.store.register_mail(origin, digest, raw, now)
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
            log.info(
                "mail already handled", extra={"mail": record.id, "state": record.state}
            )
            return _disposition(record.state)
        # A mail refused or given up on is recorded with what its head says
        # (sender, subject, Message-ID), read within bounds: `maild mails list`.
        head = (
            parsed
            if isinstance(parsed, InboundMail)
            else head_of(raw, origin.envelope_sender, origin.envelope_recipients)
        )
        if record.attempts > self.settings.limits.handling_attempts:
            return self._quarantine(
                record, f"handling failed {record.attempts - 1} times", now, head
            )
        if isinstance(parsed, MailRejected):
            reason = f"{parsed.reason}: {parsed}"
            return self._quarantine(
                record, reason, now, head, self._refusal(head, parsed)
            )
        return self._apply(record, parsed, now)

    def _apply(
        self, record: MailRecord, mail: InboundMail, now: datetime
    ) -> MailDisposition:
        outcome = classify(mail, self.policy, self.store)
        log.debug(
            "mail classified",
            extra={"mail": record.id, "kind": type(outcome).__name__},
        )
        match outcome:
            case NewTicket():
                with self.store.transaction() as tx:
                    opened = self.open_ticket.open(tx, record, mail, outcome, now)
                if isinstance(opened, Held):
                    _log_outcome(
                        record, MailOutcome.QUARANTINED, mail, reason=opened.reason
                    )
                    return MailDisposition.QUARANTINED
                _log_outcome(record, MailOutcome.TICKET, mail, ticket=opened.number)
                return MailDisposition.DONE
            case Reply():
                return self._reply(record, mail, outcome, now)
            case CommandMail():
                with self.store.transaction() as tx:
                    summary = self.answer_command.answer(tx, mail, outcome, now)
                    tx.finish_mail(record.id, MailState.DONE, summary, None, now, mail)
                _log_outcome(record, MailOutcome.REPLY, mail)
                return MailDisposition.DONE
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
        with self.store.transaction() as tx:
            tx.finish_mail(record.id, MailState.QUARANTINED, reason, None, now, mail)
            if notice is not None:
                self.outbound.queue_all(tx, notice, None, now, mail)
        _log_outcome(record, MailOutcome.QUARANTINED, mail, reason=reason)
        return MailDisposition.QUARANTINED

    def _refusal(
        self, head: InboundMail, exc: MailRejected
    ) -> notify.MailRefused | None:
        """Tell a refused mail's sender why, unless a machine or an outsider sent it."""
        if exc.reason not in REFUSAL_REASONS:
            return None  # a loop, say: never answered
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
        """Record a robot's mail on the ticket it concerns; never answer it."""
        reason = f"{outcome.reason}: {outcome.detail}"
        with self.store.transaction() as tx:
            if outcome.bounce is not None:  # the notification it reports failed
                reported = self.outbound.mark_bounced(tx, outcome.bounce)
                reason += _notification(reported, outcome.bounce.message_ids)
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
                tx.add_event(
                    ticket.id,
                    NewEvent(
                        kind,
                        mail.sender.address,
                        now,
                        reason,
                        mail.message_id,
                        mail_id=record.id,
                    ),
                )
            tx.finish_mail(
                record.id,
                MailState.IGNORED,
                reason,
                ticket.id if ticket else None,
                now,
                mail,
            )
        number = ticket.number if ticket else None
        _log_outcome(record, MailOutcome.IGNORED, mail, ticket=number, reason=reason)
        return MailDisposition.DONE

    def _reply(
        self, record: MailRecord, mail: InboundMail, outcome: Reply, now: datetime
    ) -> MailDisposition:
        with self.store.transaction() as tx:
            ticket = tx.ticket_by_number(outcome.ticket_number, for_update=True)
            if ticket is None:
                raise LookupError(outcome.ticket_number)
            summary = self.apply_reply.apply(tx, ticket, mail, record.id, now)
            tx.finish_mail(record.id, MailState.DONE, summary, ticket.id, now, mail)
        _log_outcome(record, MailOutcome.REPLY, mail, ticket=ticket.number)
        return MailDisposition.DONE


def _log_outcome(
    record: MailRecord,
    outcome: MailOutcome,
    mail: InboundMail | None,
    *,
    ticket: str | None = None,
    reason: str | None = None,
) -> None:
    """Log the one line a mail gets: what it came to, once that is committed.

    Sender and Message-ID are what the mail (or its head) says; never its text.
    """
    log.log(
        logging.WARNING if outcome is MailOutcome.QUARANTINED else logging.INFO,
        "mail handled",
        extra={
            "mail": record.id,
            "outcome": outcome.value,
            "ticket": ticket,
            "sender": mail.sender.address if mail is not None else None,
            "msgid": mail.message_id if mail is not None else None,
            "reason": reason,
        },
    )


def _notification(marked: str | None, named: tuple[str, ...]) -> str:
    """Which mail of ours a bounce reports, for its record: the one it marked
    failed, else the likeliest it names (delayed, or sent before the outbox
    kept it)."""
    if marked is not None:
        return f" (notification <{marked}> marked failed)"
    if named:
        return f" (about <{named[0]}>)"
    return ""


def _disposition(state: MailState) -> MailDisposition:
    if state is MailState.QUARANTINED:
        return MailDisposition.QUARANTINED
    return MailDisposition.DONE
