"""Notifications: what happened -> who is told what. Pure.

Outcomes are values; each gives the tuple of Notification values that the
service renders and queues in the same transaction as the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from maild.core.classify import is_accepted
from maild.domain import (
    Attachment,
    Audience,
    CommandResult,
    EventKind,
    Notification,
    Person,
    Role,
    TicketView,
    Timer,
)


@dataclass(frozen=True, slots=True)
class TicketOpened:
    ticket: TicketView
    note: str  # a note code, e.g. beneficiary_outside
    note_detail: str
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
        case Transcript():
            return (
                Notification(
                    template="transcript",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    ticket=outcome.ticket,
                    results=outcome.results,
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case ClosedTicketReply():
            return (
                Notification(
                    template="closed_ticket",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    ticket=outcome.ticket,
                    note="ticket_closed",
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case HelpAsked():
            return (
                Notification(
                    template="help",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    role=outcome.role.value,
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case TimerFired():
            return _timer_fired(outcome, pool_address)
        case DigestDue():
            audience = (
                Audience.SUPERVISOR
                if outcome.role is Role.SUPERVISOR
                else Audience.TECHNICIAN
            )
            return (
                Notification(
                    template="digest",
                    audience=audience,
                    to=(outcome.reader,),
                    role=outcome.role.value,
                    tickets=outcome.tickets,
                    lines=outcome.lines,
                ),
            )
        case ListAsked():
            return (
                Notification(
                    template="list",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    role=outcome.role.value,
                    tickets=outcome.tickets,
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case DeliveryFailedOutcome():
            return _delivery_failed(outcome, pool_address)
        case MailRefused():
            return (
                Notification(
                    template="rejected",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    note=outcome.reason,
                    text=outcome.subject,
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case NotApplied():
            return (
                Notification(
                    template="not_applied",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case NewTicketHeld():
            return (
                Notification(
                    template="new_ticket_held",
                    audience=Audience.SENDER,
                    to=(outcome.sender,),
                    text=outcome.subject,
                    lines=(str(outcome.opened_last_hour),),
                    in_reply_to=outcome.in_reply_to,
                    is_capped=True,
                ),
            )
        case _:
            assert_never(outcome)


def _delivery_failed(
    outcome: DeliveryFailedOutcome, pool_address: str
) -> tuple[Notification, ...]:
    # A report that fails in turn would be reported to the same readers, and
    # so on: mail that was for the supervisors is never reported.
    if outcome.failed_audience is Audience.SUPERVISOR:
        return ()
    return (
        Notification(
            template="delivery_failed",
            audience=Audience.SUPERVISOR,
            to=outcome.supervisors or (pool_address,),
            ticket=outcome.ticket,
            text=outcome.error,
            lines=outcome.recipients,
            note_detail=outcome.subject,
        ),
    )


def _ticket_opened(
    outcome: TicketOpened, pool_address: str
) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    return (
        Notification(
            template="confirmation",
            audience=Audience.REQUESTER,
            to=_public(ticket),
            ticket=ticket,
            note=outcome.note,
            note_detail=outcome.note_detail,
            in_reply_to=outcome.source_message_id,
            is_capped=True,
        ),
        Notification(
            template="announcement",
            audience=Audience.POOL,
            to=(pool_address,),
            ticket=ticket,
        ),
    )


def _comment_added(
    outcome: CommentAdded, pool_address: str
) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    match outcome.author:
        case Author.PARTY:
            return (
                Notification(
                    template="comment",
                    audience=Audience.OWNER,
                    to=(ticket.owner or pool_address,),
                    ticket=ticket,
                    text=outcome.text,
                    actor=outcome.actor,
                    attachments=outcome.attachments,
                ),
            )
        case Author.OWNER:
            return (
                Notification(
                    template="comment",
                    audience=Audience.REQUESTER,
                    to=_unique((ticket.requester, ticket.beneficiary)),
                    ticket=ticket,
                    text=outcome.text,
                    actor=outcome.actor,
                    attachments=outcome.attachments,
                ),
            )
        case Author.STAFF | Author.STRANGER:
            return ()
        case _:
            assert_never(outcome.author)


def _command_applied(
    outcome: CommandApplied, pool_address: str
) -> tuple[Notification, ...]:
    ticket, event = outcome.ticket, outcome.event

    def notice(
        template: str, audience: Audience, to: tuple[str, ...], note: str = ""
    ) -> tuple[Notification, ...]:
        return (
            Notification(
                template=template,
                audience=audience,
                to=to,
                ticket=ticket,
                text=outcome.text,
                actor=outcome.actor,
                note=note,
                note_detail=outcome.actor,
            ),
        )

    owner = (ticket.owner or outcome.previous_owner or pool_address,)
    match event:
        case EventKind.CLAIMED:
            return notice("claimed", Audience.REQUESTER, _public(ticket))
        case EventKind.RESOLVED:
            return notice("resolved", Audience.REQUESTER, _public(ticket))
        case EventKind.RELEASED:
            return notice("announcement", Audience.POOL, (pool_address,), "released")
        case EventKind.ASSIGNED:
            return notice("assigned", Audience.OWNER, owner)
        case EventKind.REFUSED:
            return notice("refused", Audience.OWNER, owner)
        case EventKind.ACCEPTED:
            return notice("accepted", Audience.OWNER, owner)
        case EventKind.CANCELLED:
            return notice("cancelled", Audience.OWNER, owner)
        case _:
            return ()


def _timer_fired(outcome: TimerFired, pool_address: str) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    owner = (ticket.owner or pool_address,)
    match outcome.timer:
        case Timer.REMINDER:
            return (Notification("reminder", Audience.OWNER, owner, ticket),)
        case Timer.PDR_RETRY:
            return (Notification("pdr_retry", Audience.OWNER, owner, ticket),)
        case Timer.BREACH:
            return (
                Notification(
                    "breach",
                    Audience.SUPERVISOR,
                    outcome.supervisors or (pool_address,),
                    ticket,
                ),
            )
        case Timer.REANNOUNCE:
            return (
                Notification(
                    "announcement",
                    Audience.POOL,
                    (pool_address,),
                    ticket,
                    note="reannounced",
                ),
            )
        case Timer.AUTO_CLOSE:
            return (
                Notification(
                    "auto_closed", Audience.REQUESTER, _public(ticket), ticket
                ),
            )
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
