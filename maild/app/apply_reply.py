"""Working a ticket by reply: commands, comments and the transcript. Wiring only.

The new text of a reply is split into commands and a comment (core/quotes,
core/commands); each command is decided (core/permissions) on the ticket as
the previous one left it and, when allowed, applied to the ticket row here;
the comment is recorded and forwarded (core/notify); one transcript answers
a mail that held commands. All of it in the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from maild.adapters.database.models import TicketRow
from maild.adapters.database.store import Tx
from maild.adapters.database.ticket_rows import (
    add_mail_event,
    facts_of,
    set_timers,
    timers_of,
    view_of,
)
from maild.app.queue_notifications import Outbound
from maild.config import Settings
from maild.core import notify
from maild.core.commands import Command, CommandKind, RefusedLine, parse_commands
from maild.core.identity import IdentityCheck, check_sender
from maild.core.permissions import (
    Actor,
    Allowed,
    RefusalReason,
    Refused,
    StaffRole,
    TicketFacts,
    decide,
    facts_after,
    may_rate_closed,
    roles_of,
)
from maild.core.quotes import new_text
from maild.core.sla import BusinessCalendar, callback_status
from maild.core.timers import timers_after
from maild.domain import (
    CloseReason,
    CommandResult,
    EventKind,
    InboundMail,
    Role,
    TicketState,
)

log = logging.getLogger(__name__)

_INTERNAL = frozenset({EventKind.CALL, EventKind.PDR, EventKind.TASK, EventKind.NOTE})
UNVERIFIED = "unverified_sender"  # the transcript's reason for a spoofable command


def staff_role(address: str, settings: Settings, added: dict[str, str]) -> StaffRole:
    """The staff role of an address: configuration first, then the CLI's list."""
    helpdesk, address = settings.helpdesk, address.lower()
    if address in helpdesk.supervisors or added.get(address) == "supervisor":
        return StaffRole.SUPERVISOR
    if address in helpdesk.technicians or added.get(address) == "technician":
        return StaffRole.TECHNICIAN
    return StaffRole.NONE


def members(settings: Settings, added: dict[str, str], role: str) -> tuple[str, ...]:
    """The technicians or the supervisors ("technician", "supervisor"): those of
    the configuration and those added with the command line, sorted."""
    helpdesk = settings.helpdesk
    configured = helpdesk.supervisors if role == "supervisor" else helpdesk.technicians
    return tuple(sorted({*configured, *(a for a, r in added.items() if r == role)}))


def assignees(settings: Settings, added: dict[str, str]) -> frozenset[str]:
    """Who ASSIGN may name: every technician and supervisor."""
    helpdesk = settings.helpdesk
    return frozenset((*helpdesk.technicians, *helpdesk.supervisors, *added))


class ReplyWork:
    """Applies one reply to one ticket inside an open transaction."""

    def __init__(
        self, settings: Settings, outbound: Outbound, calendar: BusinessCalendar
    ) -> None:
        self.settings = settings
        self.outbound = outbound
        self.calendar = calendar

    def apply(
        self, tx: Tx, row: TicketRow, mail: InboundMail, mail_id: int, now: datetime
    ) -> str:
        """Apply the reply; return a one-line summary for the mail record."""
        added = tx.staff()
        actor = Actor(
            mail.sender.address, staff_role(mail.sender.address, self.settings, added)
        )
        parsed = parse_commands(new_text(mail.command_text))
        comment = _with_enclosed(parsed.comment, mail)
        identity = self._identity(row, mail)
        facts = facts_of(tx, row)
        is_stranger = not actor.is_staff and not roles_of(actor, facts)
        if row.status == TicketState.CLOSED.value and not self._is_rating(
            row, parsed.commands, now
        ):
            return self._on_closed(tx, row, actor, mail, mail_id, now, is_stranger)
        entries: list[Command | RefusedLine] = sorted(
            (*parsed.commands, *parsed.refused), key=lambda e: e.line_no
        )
        results = [
            self._command(tx, row, actor, entry, mail, mail_id, now, added)
            if identity.is_verified
            else self._unverified(tx, row, actor, entry, mail, mail_id, now)
            for entry in entries
        ]
        if comment or (mail.attachments and not entries):
            self._comment(
                tx,
                row,
                actor,
                comment,
                mail,
                mail_id,
                now,
                is_verified=identity.is_verified,
            )
        elif mail.attachments:
            tx.add_attachments(row.id, None, mail.attachments)  # kept on the ticket
        if results:
            answer: notify.Outcome = (
                notify.NotApplied(actor.address, mail.message_id)
                if is_stranger
                else notify.Transcript(
                    view_of(tx, row), actor.address, tuple(results), mail.message_id
                )
            )
            # Need to know: nothing of the ticket goes to a stranger, not even
            # the thread it belongs to.
            self.outbound.queue_all(tx, answer, None if is_stranger else row, now)
        done = sum(r.is_done for r in results)
        return (
            f"reply on {row.number}: {done} command(s) done, "
            f"{len(results) - done} refused"
        )

    def _is_rating(
        self, row: TicketRow, commands: tuple[Command, ...], now: datetime
    ) -> bool:
        """A RATE on a closed ticket, within the period that follows its closure."""
        return any(c.kind is CommandKind.RATE for c in commands) and (
            may_rate_closed(
                row.closed_at, now, self.settings.retention.rate_days_after_close
            )
        )

    def _on_closed(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
        is_stranger: bool,
    ) -> str:
        """Keep a reply to a closed ticket for staff; tell its sender to write anew."""
        add_mail_event(
            tx,
            row,
            EventKind.COMMENT,
            actor.address,
            now,
            new_text(mail.text),
            mail,
            mail_id,
            is_internal=True,
        )
        if is_stranger:
            answer: notify.Outcome = notify.NotApplied(actor.address, mail.message_id)
        else:
            answer = notify.ClosedTicketReply(
                view_of(tx, row), actor.address, mail.message_id
            )
        self.outbound.queue_all(tx, answer, None if is_stranger else row, now)
        return f"reply on closed {row.number}"

    def _identity(self, row: TicketRow, mail: InboundMail) -> IdentityCheck:
        """Check the sender against the trusted MTA's Authentication-Results."""
        identity = check_sender(
            mail.sender.address,
            mail.authentication_results,
            self.settings.trusted_authserv_ids,
        )
        if not identity.is_verified:
            log.warning(
                "ticket=%s msgid=%s sender %s not verified: %s",
                row.number,
                mail.message_id,
                mail.sender.address,
                identity.detail,
            )
        return identity

    def _unverified(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        entry: Command | RefusedLine,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
    ) -> CommandResult:
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
        return self._refuse(
            tx, row, actor, line, UNVERIFIED, "", mail, mail_id, now, shown=shown
        )

    def _command(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        entry: Command | RefusedLine,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
        added: dict[str, str],
    ) -> CommandResult:
        if isinstance(entry, RefusedLine):
            return self._refuse(
                tx,
                row,
                actor,
                entry.line,
                entry.problem.value,
                entry.suggestion,
                mail,
                mail_id,
                now,
            )
        line = _line_of(entry)
        decision = decide(
            actor, entry, facts_of(tx, row), assignees=assignees(self.settings, added)
        )
        match decision:
            case Refused():
                return self._refuse(
                    tx,
                    row,
                    actor,
                    line,
                    decision.reason.value,
                    _refusal_detail(decision, entry),
                    mail,
                    mail_id,
                    now,
                )
            case Allowed():
                self._apply_allowed(tx, row, actor, entry, decision, mail, mail_id, now)
                return CommandResult(line, is_done=True)

    def _apply_allowed(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        command: Command,
        decision: Allowed,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
    ) -> None:
        previous_owner = row.owner
        facts = facts_after(facts_of(tx, row), actor, command)
        row.owner = facts.owner
        row.status = decision.next_state.value
        _apply_effect(row, command, now)
        set_timers(
            row,
            timers_after(
                decision.event, timers_of(row), now, self.settings.sla, self.calendar
            ),
        )
        add_mail_event(
            tx,
            row,
            decision.event,
            actor.address,
            now,
            _event_text(command),
            mail,
            mail_id,
            is_internal=decision.event in _INTERNAL,
        )
        self.outbound.queue_all(
            tx,
            notify.CommandApplied(
                decision.event,
                view_of(tx, row),
                actor.address,
                command.text,
                previous_owner,
            ),
            row,
            now,
        )
        log.info("ticket=%s %s by %s", row.number, decision.event, actor.address)

    def _refuse(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        line: str,
        reason: str,
        detail: str,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
        *,
        shown: str | None = None,
    ) -> CommandResult:
        add_mail_event(
            tx,
            row,
            EventKind.COMMAND_REFUSED,
            actor.address,
            now,
            f"{line} ({reason})",
            mail,
            mail_id,
            is_internal=True,
        )
        return CommandResult(
            line if shown is None else shown,
            is_done=False,
            reason=reason,
            detail=detail,
        )

    def _comment(
        self,
        tx: Tx,
        row: TicketRow,
        actor: Actor,
        text: str,
        mail: InboundMail,
        mail_id: int,
        now: datetime,
        *,
        is_verified: bool,
    ) -> None:
        # An unverified sender's text is kept for staff and never forwarded.
        author = (
            _author(actor, facts_of(tx, row)) if is_verified else notify.Author.STRANGER
        )
        is_internal = author in (notify.Author.STAFF, notify.Author.STRANGER)
        event_id = add_mail_event(
            tx,
            row,
            EventKind.COMMENT,
            actor.address,
            now,
            text,
            mail,
            mail_id,
            is_internal=is_internal,
        )
        tx.add_attachments(row.id, event_id, mail.attachments)
        self.outbound.queue_all(
            tx,
            notify.CommentAdded(
                view_of(tx, row), author, actor.address, text, mail.attachments
            ),
            row,
            now,
        )


def _apply_effect(row: TicketRow, command: Command, now: datetime) -> None:
    """What a command changes on the ticket besides its state and owner."""
    match command.kind:
        case CommandKind.CALL | CommandKind.PDR:
            _first_call(row, now)
        case CommandKind.RESOLVED:
            _first_call(row, now)
            row.resolved_at = now
        case CommandKind.REFUSE:
            row.resolved_at = None
        case CommandKind.ACCEPT:
            row.closed_at, row.close_reason = now, CloseReason.ACCEPTED.value
        case CommandKind.CANCEL:
            row.closed_at, row.close_reason = now, CloseReason.CANCELLED.value
        case CommandKind.RATE:
            row.rating_score, row.rating_comment = command.score, command.text
        case (
            CommandKind.CLAIM
            | CommandKind.RELEASE
            | CommandKind.ASSIGN
            | CommandKind.TASK
            | CommandKind.NOTE
        ):
            pass  # state and owner only, set by the caller


def _first_call(row: TicketRow, now: datetime) -> None:
    """The first CALL, PDR or RESOLVED meets (or misses) the call-back SLA."""
    if row.first_call_at is None:
        row.first_call_at = now
        if row.callback_due_at is not None:
            row.callback_met = callback_status(row.callback_due_at, now, now)


def _author(actor: Actor, facts: TicketFacts) -> notify.Author:
    address = actor.address.lower()
    if facts.owner and address == facts.owner.lower():
        return notify.Author.OWNER
    parties = {facts.requester.lower(), facts.beneficiary.lower(), *facts.watchers}
    if address in parties:
        return notify.Author.PARTY
    return notify.Author.STAFF if actor.is_staff else notify.Author.STRANGER


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


def role_for_help(actor: Actor) -> Role:
    """The role whose help and list a sender gets."""
    match actor.staff_role:
        case StaffRole.SUPERVISOR:
            return Role.SUPERVISOR
        case StaffRole.TECHNICIAN:
            return Role.TECHNICIAN
        case StaffRole.NONE:
            return Role.REQUESTER
