"""Notifications: what happened -> who is told what. Pure.

Outcomes are values; each gives the tuple of Notification values that the
service renders and queues in the same transaction as the change. A
Notification is an envelope (template, audience, recipients, threading, caps)
around a notice: what that mail says, typed, from core/notices.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from maild.core import notices
from maild.core.addresses import is_accepted
from maild.domain import (
    Attachment,
    Audience,
    CommandResult,
    EventKind,
    Notice,
    Notification,
    Person,
    Role,
    TicketView,
    Timer,
)

# TicketOpened.note codes: why the beneficiary named was not taken.
BENEFICIARY_OUTSIDE = "beneficiary_outside"  # outside the accepted domains
BENEFICIARY_REFUSED = "beneficiary_refused"  # not a person's mailbox


@dataclass(frozen=True, slots=True)
class TicketOpened:
    ticket: TicketView
    note: str  # "", BENEFICIARY_OUTSIDE or BENEFICIARY_REFUSED
    note_detail: str  # the address the note is about
    source_message_id: str  # the mail that opened it, answered by the confirmation


class Author(StrEnum):
    """Who wrote a comment, as far as forwarding is concerned."""

    PARTY = "party"  # requester, beneficiary or watcher
    OWNER = "owner"
    STAFF = "staff"  # staff other than the owner: internal
    STRANGER = "stranger"  # neither on the ticket nor staff: kept for staff only


@dataclass(frozen=True, slots=True)
class CommentAdded:
    ticket: TicketView
    author: Author
    actor: str
    text: str
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True, slots=True)
class CommandApplied:
    event: EventKind
    ticket: TicketView  # as the command left it
    actor: str
    text: str
    previous_owner: str | None


@dataclass(frozen=True, slots=True)
class Transcript:
    ticket: TicketView | None
    sender: str
    results: tuple[CommandResult, ...]
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class ClosedTicketReply:
    ticket: TicketView
    sender: str
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class HelpAsked:
    sender: str
    role: Role
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class ListAsked:
    sender: str
    role: Role
    tickets: tuple[TicketView, ...]
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer: Timer
    ticket: TicketView
    supervisors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DigestDue:
    reader: str
    role: Role  # technician or supervisor
    tickets: tuple[TicketView, ...]
    lines: tuple[str, ...]  # summary lines for supervisors


@dataclass(frozen=True, slots=True)
class DeliveryFailedOutcome:
    """The relay refused a queued mail for good (5xx): the supervisors are told."""

    ticket: TicketView | None  # the ticket the mail was about, if any
    recipients: tuple[str, ...]  # whom the mail was for
    error: str  # the relay's answer
    subject: str  # the subject of the mail that was not delivered
    failed_audience: Audience  # who the mail was for, as a kind of reader
    supervisors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MailRefused:
    """A mail over a limit or unreadable was quarantined: its sender is told once."""

    sender: str
    reason: str  # a code of core/limits.py REFUSAL_REASONS, e.g. too_large
    subject: str = ""  # of the refused mail, so its sender knows which one
    in_reply_to: str = ""  # its Message-ID


@dataclass(frozen=True, slots=True)
class NotApplied:
    """A reply from someone neither on the ticket nor staff: need to know.

    Its answer names nothing of the ticket, not even its number or subject.
    """

    sender: str
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class NewTicketHeld:
    """A sender over the new-tickets cap: the mail is kept, not opened."""

    sender: str
    subject: str  # of the held mail, so its sender knows which one
    opened_last_hour: int
    in_reply_to: str


Outcome = (
    TicketOpened
    | TimerFired
    | DigestDue
    | CommentAdded
    | CommandApplied
    | Transcript
    | ClosedTicketReply
    | HelpAsked
    | ListAsked
    | MailRefused
    | DeliveryFailedOutcome
    | NotApplied
    | NewTicketHeld
)
# The outcomes answered to the sender of a mail, and to them alone.
Answered = (
    Transcript
    | ClosedTicketReply
    | HelpAsked
    | ListAsked
    | MailRefused
    | NotApplied
    | NewTicketHeld
)


@dataclass(frozen=True, slots=True)
class Caps:
    per_hour: int
    per_day: int


def notifications_for(outcome: Outcome, pool_address: str) -> tuple[Notification, ...]:
    """Say who is told what about an outcome."""
    match outcome:
        case TicketOpened():
            return _ticket_opened(outcome, pool_address)
        case CommentAdded():
            return _comment_added(outcome, pool_address)
        case CommandApplied():
            return _command_applied(outcome, pool_address)
        case TimerFired():
            return _timer_fired(outcome, pool_address)
        case DigestDue():
            audience = (
                Audience.SUPERVISOR
                if outcome.role is Role.SUPERVISOR
                else Audience.TECHNICIAN
            )
            digest = notices.Digest(outcome.tickets, outcome.lines)
            return (Notification("digest", audience, (outcome.reader,), digest),)
        case DeliveryFailedOutcome():
            return _delivery_failed(outcome, pool_address)
        case _:
            return (_answer(outcome),)


def _answer(outcome: Answered) -> Notification:
    """The answer to the sender of a mail: capped, since a robot may be writing.

    The notice of a held new ticket is the exception: the sender has just
    spent their answers on the tickets they opened, and the notice goes out
    once an hour at most anyway (the use case records it).
    """
    template, notice = _answer_notice(outcome)
    return Notification(
        template,
        Audience.SENDER,
        (outcome.sender,),
        notice,
        in_reply_to=outcome.in_reply_to,
        is_capped=not isinstance(outcome, NewTicketHeld),
    )


def _answer_notice(outcome: Answered) -> tuple[str, Notice]:
    match outcome:
        case Transcript():
            return "transcript", notices.Transcript(outcome.ticket, outcome.results)
        case ClosedTicketReply():
            return "closed_ticket", notices.AboutTicket(outcome.ticket)
        case HelpAsked():
            return "help", notices.Help(_reader(outcome.role))
        case ListAsked():
            return "list", notices.TicketList(_reader(outcome.role), outcome.tickets)
        case MailRefused():
            return "rejected", notices.Rejected(outcome.subject, outcome.reason)
        case NotApplied():
            return "not_applied", notices.NotApplied()
        case NewTicketHeld():
            held = notices.NewTicketHeld(outcome.subject, outcome.opened_last_hour)
            return "new_ticket_held", held
        case _:
            assert_never(outcome)


def _reader(role: Role) -> Role:
    """Whose commands and tickets an answer shows: staff's, or a requester's."""
    return role if role in (Role.TECHNICIAN, Role.SUPERVISOR) else Role.REQUESTER


def _delivery_failed(
    outcome: DeliveryFailedOutcome, pool_address: str
) -> tuple[Notification, ...]:
    # A report that fails in turn would be reported to the same readers, and
    # so on: mail that was for the supervisors is never reported.
    if outcome.failed_audience is Audience.SUPERVISOR:
        return ()
    report = notices.DeliveryFailed(
        outcome.ticket, outcome.error, outcome.recipients, outcome.subject
    )
    to = outcome.supervisors or (pool_address,)
    return (Notification("delivery_failed", Audience.SUPERVISOR, to, report),)


def _ticket_opened(
    outcome: TicketOpened, pool_address: str
) -> tuple[Notification, ...]:
    ticket, address = outcome.ticket, outcome.note_detail
    confirmation = notices.Confirmation(
        ticket,
        beneficiary_outside=address if outcome.note == BENEFICIARY_OUTSIDE else None,
        beneficiary_refused=address if outcome.note == BENEFICIARY_REFUSED else None,
    )
    return (
        Notification(
            "confirmation",
            Audience.REQUESTER,
            _public(ticket),
            confirmation,
            in_reply_to=outcome.source_message_id,
            is_capped=True,
        ),
        Notification(
            "announcement", Audience.POOL, (pool_address,), notices.Announcement(ticket)
        ),
    )


def _comment_added(
    outcome: CommentAdded, pool_address: str
) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    match outcome.author:
        case Author.PARTY:
            audience = Audience.OWNER
            to: tuple[str, ...] = (ticket.owner or pool_address,)
        case Author.OWNER:
            audience = Audience.REQUESTER
            to = _unique((ticket.requester, ticket.beneficiary))
        case Author.STAFF | Author.STRANGER:
            return ()
        case _:
            assert_never(outcome.author)
    comment = notices.Comment(ticket, outcome.actor, outcome.text)
    return (
        Notification("comment", audience, to, comment, attachments=outcome.attachments),
    )


def _command_applied(
    outcome: CommandApplied, pool_address: str
) -> tuple[Notification, ...]:
    ticket, by, text = outcome.ticket, outcome.actor, outcome.text
    public = _public(ticket)
    owner = (ticket.owner or outcome.previous_owner or pool_address,)
    match outcome.event:
        case EventKind.CLAIMED:
            return _one(
                "claimed", Audience.REQUESTER, public, notices.Claimed(ticket, by)
            )
        case EventKind.RESOLVED:
            resolved = notices.Resolved(ticket, by, text)
            return _one("resolved", Audience.REQUESTER, public, resolved)
        case EventKind.RELEASED:
            released = notices.Announcement(ticket, notices.Announced.RELEASED, by)
            return _one("announcement", Audience.POOL, (pool_address,), released)
        case EventKind.ASSIGNED:
            return _one("assigned", Audience.OWNER, owner, notices.Assigned(ticket, by))
        case EventKind.REFUSED:
            refused = notices.Refused(ticket, by, text)
            return _one("refused", Audience.OWNER, owner, refused)
        case EventKind.ACCEPTED:
            accepted = notices.Accepted(ticket, by, text)
            return _one("accepted", Audience.OWNER, owner, accepted)
        case EventKind.CANCELLED:
            cancelled = notices.Cancelled(ticket, by, text)
            return _one("cancelled", Audience.OWNER, owner, cancelled)
        case _:
            return ()


def _one(
    template: str, audience: Audience, to: tuple[str, ...], notice: Notice
) -> tuple[Notification]:
    return (Notification(template, audience, to, notice),)


def _timer_fired(outcome: TimerFired, pool_address: str) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    owner = (ticket.owner or pool_address,)
    about = notices.AboutTicket(ticket)
    match outcome.timer:
        case Timer.REMINDER:
            return _one("reminder", Audience.OWNER, owner, about)
        case Timer.PDR_RETRY:
            return _one("pdr_retry", Audience.OWNER, owner, about)
        case Timer.BREACH:
            supervisors = outcome.supervisors or (pool_address,)
            return _one("breach", Audience.SUPERVISOR, supervisors, about)
        case Timer.REANNOUNCE:
            again = notices.Announcement(ticket, notices.Announced.REANNOUNCED)
            return _one("announcement", Audience.POOL, (pool_address,), again)
        case Timer.AUTO_CLOSE:
            return _one("auto_closed", Audience.REQUESTER, _public(ticket), about)
        case _:
            assert_never(outcome.timer)


def is_over_cap(sent_last_hour: int, sent_last_day: int, caps: Caps) -> bool:
    """Tell whether one more automatic answer to an address would pass a cap."""
    return sent_last_hour >= caps.per_hour or sent_last_day >= caps.per_day


def is_over_ladder(
    sent_last_10_minutes: int, sent_last_hour: int, per_10_minutes: int, per_hour: int
) -> bool:
    """Tell whether one more automatic answer on a ticket would pass its ladder.

    The per-address caps stop a loop with one auto-responder; the ladder stops
    one that goes round several addresses of the same ticket.
    """
    return sent_last_10_minutes >= per_10_minutes or sent_last_hour >= per_hour


def may_receive(
    address: str, accepted_domains: tuple[str, ...], staff: frozenset[str]
) -> bool:
    """Tell whether maild may mail an address: in an accepted domain, or staff.

    A safety net under every notification (the Ticket Trick): whatever a bug
    or a crafted mail puts in a recipient list, nothing leaves for the outside
    world but to staff, the pool and supervisors.
    """
    return address.lower() in staff or is_accepted(address, accepted_domains)


def _public(ticket: TicketView) -> tuple[str, ...]:
    """Requester, beneficiary and watchers: who hears of the ticket's progress."""
    return _unique((ticket.requester, ticket.beneficiary, *ticket.watchers))


def _unique(people: tuple[Person, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for person in people:
        if person.address:
            seen.setdefault(person.address, None)
    return tuple(seen)
