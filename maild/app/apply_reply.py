"""Use case: apply a reply to its ticket — commands, comment, transcript.

The new text of a reply is split into commands and a comment (core/quotes,
core/commands); each command is decided (core/permissions) on the ticket as
the previous one left it and, when allowed, the ticket it leaves is computed
(core/tickets) and saved; the comment is recorded and forwarded
(core/notify); one transcript answers a mail that held commands. All of it
in the caller's transaction, through the DeskSession port.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from maild.app.identity import sender_identity
from maild.app.ports import DeskSession, NewEvent
from maild.app.queue_notifications import Outbound
from maild.app.staff import assignees, staff_role
from maild.config import Settings
from maild.core import notify
from maild.core.commands import Command, CommandKind, RefusedLine, parse_commands
from maild.core.permissions import (
    Actor,
    Allowed,
    RefusalReason,
    Refused,
    TicketFacts,
    decide,
    may_rate_closed,
    roles_of,
)
from maild.core.quotes import new_text
from maild.core.sla import BusinessCalendar
from maild.core.tickets import (
    INTERNAL_EVENTS,
    after_command,
    after_staff_mail,
    facts_of,
    ticket_view,
)
from maild.domain import (
    CommandResult,
    EventKind,
    InboundMail,
    Role,
    Ticket,
    TicketState,
    TicketView,
)

log = logging.getLogger(__name__)

UNVERIFIED = "unverified_sender"  # the transcript's reason for a spoofable command


@dataclass(slots=True)
class _Reply:
    """One reply being applied: the mail, its sender, and the ticket as it stands."""

    tx: DeskSession
    mail: InboundMail
    mail_id: int
    now: datetime
    actor: Actor
    added_staff: dict[str, Role]
    ticket: Ticket

    def event(self, kind: EventKind, text: str, *, is_internal: bool = False) -> int:
        """Record an event this mail caused on the ticket; return its id."""
        return self.tx.add_event(
            self.ticket.id,
            NewEvent(
                kind,
                self.actor.address,
                self.now,
                text,
                self.mail.message_id,
                is_internal=is_internal,
                mail_id=self.mail_id,
            ),
        )

    def view(self) -> TicketView:
        tx, ticket = self.tx, self.ticket
        return ticket_view(
            ticket, tx.watchers(ticket.id), tx.attachment_names(ticket.id)
        )

    def facts(self) -> TicketFacts:
        return facts_of(self.ticket, self.tx.watchers(self.ticket.id))


class ApplyReply:
    """Applies one reply to one ticket inside an open transaction."""

    def __init__(
        self, settings: Settings, outbound: Outbound, calendar: BusinessCalendar
    ) -> None:
        self.settings = settings
        self.outbound = outbound
        self.calendar = calendar

    def apply(
        self,
        tx: DeskSession,
        ticket: Ticket,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
    ) -> str:
        """Apply the reply; return a one-line summary for the mail record."""
        added = dict(tx.staff())
        actor = Actor(
            mail.sender.address, staff_role(mail.sender.address, self.settings, added)
        )
        reply = _Reply(tx, mail, mail_id, now, actor, added, ticket)
        parsed = parse_commands(new_text(mail.command_text))
        comment = _with_enclosed(parsed.comment, mail)
        identity = sender_identity(self.settings, mail, ticket.number)
        self._lift_hold(reply, is_verified=identity.is_verified)
        is_stranger = not actor.is_staff and not roles_of(actor, reply.facts())
        if ticket.status is TicketState.CLOSED and not self._works_closed(
            actor, ticket, parsed.commands, now
        ):
            return self._on_closed(reply, is_stranger=is_stranger)
        entries: list[Command | RefusedLine] = sorted(
            (*parsed.commands, *parsed.refused), key=lambda e: e.line_no
        )
        results = [
            self._command(reply, entry)
            if identity.is_verified
            else self._unverified(reply, entry)
            for entry in entries
        ]
        if comment or (mail.attachments and not entries):
            self._comment(reply, comment, is_verified=identity.is_verified)
        elif mail.attachments:
            tx.add_attachments(ticket.id, None, mail.attachments)  # kept on it
        if results:
            answer: notify.Outcome = (
                notify.NotApplied(actor.address, mail.message_id)
                if is_stranger
                else notify.Transcript(
                    reply.view(), actor.address, tuple(results), mail.message_id
                )
            )
            # Need to know: nothing of the ticket goes to a stranger, not even
            # the thread it belongs to.
            self.outbound.queue_all(
                tx, answer, None if is_stranger else reply.ticket, now, mail
            )
        done = sum(r.is_done for r in results)
        unverified = (
            "" if identity.is_verified or not results else " (sender not verified)"
        )
        return (
            f"reply on {ticket.number}: {done} command(s) done, "
            f"{len(results) - done} refused{unverified}"
        )

    def _works_closed(
        self,
        actor: Actor,
        ticket: Ticket,
        commands: tuple[Command, ...],
        now: datetime,
    ) -> bool:
        """Whether a reply to a closed ticket is applied like one to an open one:
        staff's commands (a NOTE fits a closed ticket, the rest are refused as
        wrong_state), or a RATE within the period that follows the closure."""
        if not commands:
            return False
        if actor.is_staff:
            return True
        return any(c.kind is CommandKind.RATE for c in commands) and (
            may_rate_closed(
                ticket.closed_at, now, self.settings.retention.rate_days_after_close
            )
        )

    def _on_closed(self, reply: _Reply, *, is_stranger: bool) -> str:
        """Keep a reply to a closed ticket for staff; tell its sender to write anew."""
        event_id = reply.event(
            EventKind.COMMENT, new_text(reply.mail.text), is_internal=True
        )
        reply.tx.add_attachments(reply.ticket.id, event_id, reply.mail.attachments)
        sender, message_id = reply.actor.address, reply.mail.message_id
        answer: notify.Outcome = (
            notify.NotApplied(sender, message_id)
            if is_stranger
            else notify.ClosedTicketReply(reply.view(), sender, message_id)
        )
        ticket = None if is_stranger else reply.ticket
        self.outbound.queue_all(reply.tx, answer, ticket, reply.now, reply.mail)
        return f"reply on closed {reply.ticket.number}"

    def _lift_hold(self, reply: _Reply, *, is_verified: bool) -> None:
        """A staff member wrote on a ticket held for its unverified sender:
        from now on its requester, beneficiary and watchers are told."""
        held = reply.ticket
        reply.ticket = after_staff_mail(held, reply.actor, is_verified=is_verified)
        if reply.ticket is held:
            return
        reply.tx.save_ticket(reply.ticket)
        reply.event(
            EventKind.NOTE,
            f"hold lifted: the sender was not verified ({held.unverified_sender})",
            is_internal=True,
        )

    def _unverified(self, reply: _Reply, entry: Command | RefusedLine) -> CommandResult:
        """Refuse a command whose sender the trusted MTA did not vouch for.

        Staff see the whole line on the ticket; the transcript names the
        keyword only, so that a spoofer's text never goes out under our name.
        """
        keyword: CommandKind | None
        if isinstance(entry, Command):
            line, keyword = _line_of(entry), entry.kind
        else:
            line, keyword = entry.line, entry.keyword
        shown = keyword.value.upper() if keyword is not None else "?"
        return _refuse(reply, line, UNVERIFIED, "", shown=shown)

    def _command(self, reply: _Reply, entry: Command | RefusedLine) -> CommandResult:
        if isinstance(entry, RefusedLine):
            return _refuse(reply, entry.line, entry.problem.value, entry.suggestion)
        line = _line_of(entry)
        facts = reply.facts()
        decision = decide(
            reply.actor,
            entry,
            facts,
            assignees=assignees(self.settings, reply.added_staff),
        )
        match decision:
            case Refused():
                detail = _refusal_detail(decision, entry)
                return _refuse(reply, line, decision.reason.value, detail)
            case Allowed():
                self._apply_allowed(reply, facts, entry, decision)
                return CommandResult(line, is_done=True)
            case _:  # pragma: no cover - exhaustive, checked by mypy
                assert_never(decision)

    def _apply_allowed(
        self, reply: _Reply, facts: TicketFacts, command: Command, decision: Allowed
    ) -> None:
        previous_owner = reply.ticket.owner
        reply.ticket = after_command(
            reply.ticket,
            facts,
            reply.actor,
            command,
            decision,
            reply.now,
            self.settings.sla,
            self.calendar,
        )
        reply.tx.save_ticket(reply.ticket)
        reply.event(
            decision.event,
            _event_text(command),
            is_internal=decision.event in INTERNAL_EVENTS,
        )
        applied = notify.CommandApplied(
            decision.event,
            reply.view(),
            reply.actor.address,
            command.text,
            previous_owner,
        )
        self.outbound.queue_all(reply.tx, applied, reply.ticket, reply.now, reply.mail)
        log.info(
            "command applied",
            extra={
                "mail": reply.mail_id,
                "ticket": reply.ticket.number,
                "event": decision.event.value,
                "sender": reply.actor.address,
            },
        )

    def _comment(self, reply: _Reply, text: str, *, is_verified: bool) -> None:
        # An unverified sender's text is kept for staff and never forwarded.
        author = (
            _author(reply.actor, reply.facts())
            if is_verified
            else notify.Author.STRANGER
        )
        is_internal = author in (notify.Author.STAFF, notify.Author.STRANGER)
        event_id = reply.event(EventKind.COMMENT, text, is_internal=is_internal)
        attachments = reply.mail.attachments
        reply.tx.add_attachments(reply.ticket.id, event_id, attachments)
        added = notify.CommentAdded(
            reply.view(), author, reply.actor.address, text, attachments
        )
        self.outbound.queue_all(reply.tx, added, reply.ticket, reply.now, reply.mail)


def _refuse(
    reply: _Reply, line: str, reason: str, detail: str, *, shown: str | None = None
) -> CommandResult:
    """Record a refused command for staff; return its transcript line."""
    reply.event(EventKind.COMMAND_REFUSED, f"{line} ({reason})", is_internal=True)
    return CommandResult(
        line if shown is None else shown, is_done=False, reason=reason, detail=detail
    )


def _refusal_detail(decision: Refused, command: Command) -> str:
    """What the transcript names beside a refusal: whom, or the state."""
    if decision.reason is RefusalReason.NOT_ASSIGNABLE:
        return command.address
    return decision.owner or decision.state.value


def _with_enclosed(comment: str, mail: InboundMail) -> str:
    """The comment, followed by the text of messages the mail encloses inline.

    Commands are read from the mail's own text only; what it encloses is kept
    with the comment, so nothing of it is lost.
    """
    if mail.own_text is None:
        return comment
    own, text = mail.own_text.strip(), mail.text.strip()
    enclosed = text[len(own) :].strip() if text.startswith(own) else text
    return "\n\n".join(part for part in (comment, enclosed) if part)


def _author(actor: Actor, facts: TicketFacts) -> notify.Author:
    address = actor.address.lower()
    if facts.owner and address == facts.owner.lower():
        return notify.Author.OWNER
    parties = {facts.requester.lower(), facts.beneficiary.lower(), *facts.watchers}
    if address in parties:
        return notify.Author.PARTY
    return notify.Author.STAFF if actor.is_staff else notify.Author.STRANGER


def _line_of(command: Command) -> str:
    parts = [command.kind.value.upper()]
    if command.score is not None:
        parts.append(str(command.score))
    if command.address:
        parts.append(command.address)
    if command.text:
        parts.append(command.text.splitlines()[0][:80])
    return " ".join(parts)


def _event_text(command: Command) -> str:
    if command.kind is CommandKind.RATE:
        return f"{command.score}/5 {command.text}".strip()
    if command.kind is CommandKind.ASSIGN:
        return command.address
    return command.text
