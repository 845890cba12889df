"""Notices: what each mail says, as the typed context of its template. Pure.

core/notify.py decides who is told what and builds one of these for each
mail; the renderer hands its fields to the template as variables of the
same names, and besides them only what it knows itself (the tag, the
helpdesk's addresses, the names of the files the mail carries). One class a
template, or a family of templates that say the same things:

| notice           | templates                                          |
|------------------|----------------------------------------------------|
| Confirmation     | confirmation.requester                             |
| Announcement     | announcement.pool                                  |
| Comment          | comment.owner, comment.requester                   |
| Claimed          | claimed.requester                                  |
| Resolved         | resolved.requester                                 |
| Assigned         | assigned.owner                                     |
| Refused          | refused.owner                                      |
| Accepted         | accepted.owner                                     |
| Cancelled        | cancelled.owner                                    |
| AboutTicket      | reminder.owner, pdr_retry.owner, breach.supervisor,|
|                  | auto_closed.requester, closed_ticket.sender        |
| Transcript       | transcript.sender                                  |
| Help             | help.sender                                        |
| TicketList       | list.sender                                        |
| Digest           | digest.technician, digest.supervisor               |
| Rejected         | rejected.sender                                    |
| NotApplied       | not_applied.sender                                 |
| NewTicketHeld    | new_ticket_held.sender                             |
| DeliveryFailed   | delivery_failed.supervisor                         |

Addresses are bare addresses; an empty one means "not known", and the
template then names the role instead ("the requester", "a technician").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from maild.domain import CommandResult, Notice, Role, TicketView


class Announced(StrEnum):
    """Why a ticket is announced to the pool."""

    NEW = "new"
    RELEASED = "released"  # its owner gave it back
    REANNOUNCED = "reannounced"  # still unclaimed after reannounce_every


@dataclass(frozen=True, slots=True)
class Confirmation(Notice):
    """A new ticket is logged; the beneficiary named may not have been taken."""

    ticket: TicketView
    # The address named as beneficiary and not taken ("" when it had none),
    # because it is outside the accepted domains, or not a person's mailbox.
    beneficiary_outside: str | None = None
    beneficiary_refused: str | None = None


@dataclass(frozen=True, slots=True)
class Announcement(Notice):
    """A ticket waits for someone to take it."""

    ticket: TicketView
    announced: Announced = Announced.NEW
    released_by: str = ""  # who released it, when announced is RELEASED


@dataclass(frozen=True, slots=True)
class Comment(Notice):
    """A comment forwarded: from a party to the owner, or from the owner to them."""

    ticket: TicketView
    author: str
    comment: str


@dataclass(frozen=True, slots=True)
class Claimed(Notice):
    ticket: TicketView
    claimed_by: str


@dataclass(frozen=True, slots=True)
class Resolved(Notice):
    ticket: TicketView
    resolved_by: str
    resolution: str  # what the technician wrote after RESOLVED


@dataclass(frozen=True, slots=True)
class Assigned(Notice):
    ticket: TicketView
    assigned_by: str


@dataclass(frozen=True, slots=True)
class Refused(Notice):
    """The resolution was refused: the ticket is back in progress."""

    ticket: TicketView
    refused_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted(Notice):
    """The resolution was accepted: the ticket is closed."""

    ticket: TicketView
    accepted_by: str
    comment: str  # what came with ACCEPT, if anything


@dataclass(frozen=True, slots=True)
class Cancelled(Notice):
    ticket: TicketView
    cancelled_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class AboutTicket(Notice):
    """A mail that needs nothing but the ticket: a timer fired, or it is closed."""

    ticket: TicketView


@dataclass(frozen=True, slots=True)
class Transcript(Notice):
    """What became of each command of a mail, in the order written."""

    ticket: TicketView | None
    results: tuple[CommandResult, ...]


@dataclass(frozen=True, slots=True)
class Help(Notice):
    reader: Role  # REQUESTER, TECHNICIAN or SUPERVISOR: which commands to show


@dataclass(frozen=True, slots=True)
class TicketList(Notice):
    reader: Role  # REQUESTER, TECHNICIAN or SUPERVISOR: which tickets these are
    tickets: tuple[TicketView, ...]


@dataclass(frozen=True, slots=True)
class Digest(Notice):
    tickets: tuple[TicketView, ...]
    summary_lines: tuple[str, ...] = ()  # for supervisors


@dataclass(frozen=True, slots=True)
class Rejected(Notice):
    """A mail refused before it could be read: over a limit, or unreadable."""

    refused_subject: str
    reason: str  # a code of core/limits.py REFUSAL_REASONS, e.g. too_large


@dataclass(frozen=True, slots=True)
class NotApplied(Notice):
    """Need to know: the answer to a stranger names nothing of the ticket."""


@dataclass(frozen=True, slots=True)
class NewTicketHeld(Notice):
    held_subject: str
    opened_last_hour: int


@dataclass(frozen=True, slots=True)
class DeliveryFailed(Notice):
    """The relay refused a mail for good."""

    ticket: TicketView | None  # the ticket the mail was about, if any
    error: str  # the relay's answer
    failed_recipients: tuple[str, ...]
    failed_subject: str
