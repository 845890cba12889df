"""Classification: InboundMail -> what kind of mail it is. Pure; runs first.

Machine-written mail (loops, bounces, auto-replies, list traffic) is recognised
before anything else, so that no ticket is opened and nothing is answered for
it: by its headers first, then an out-of-office reply by its subject and text
(core/autoreply). A bounce is traced to the mail of ours it reports
(core/bounces). Copies of maild's own headers in inbound mail bind nothing:
X-Maild-Loop marks a loop only on mail from our own address, X-Maild-Ticket is
never read; X-Loop of any value marks a loop. A bare-text bounce from a robot's
address (core/robots) is a bounce; other mail from such an address goes on,
but is never answered (core/robots.without_answers). Then threading: thread
headers naming a message we sent, then the subject tag; then a subject that is
a command word (HELP, LIST); otherwise a new ticket, if the sender may open one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from maild.core.addresses import is_accepted
from maild.core.autoreply import autoreply_sign
from maild.core.bounces import BounceFacts, is_own_message_id, read_bounce
from maild.core.commands import SubjectCommand, parse_subject_command
from maild.core.numbering import number_in_subject
from maild.core.robots import is_bare_bounce
from maild.domain import IgnoreReason, InboundMail, TicketType

_BOUNCE_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|mail-daemon)(?:\+[^@]*)?@", re.I
)
_LIST_PRECEDENCE = frozenset({"bulk", "junk", "list"})


@dataclass(frozen=True, slots=True)
class HelpdeskPolicy:
    """The installation's addresses and rules that classification needs."""

    tag: str
    accepted_domains: tuple[str, ...]
    incident_address: str
    request_address: str
    own_message_id_domain: str  # the right-hand side of our Message-IDs
    own_address: str = ""  # From of what maild sends; X-Maild-Loop carries it
    staff: frozenset[str] = frozenset()  # technicians and supervisors configured


class ThreadLookup(Protocol):
    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        """Return the number of the ticket a message we sent belongs to."""

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        """Return who is on a ticket (requester, beneficiary, watchers, owner),
        lower-cased; None when no ticket has this number."""

    def staff(self) -> Mapping[str, str]:
        """Return the staff added with the command line: address -> role."""


@dataclass(frozen=True, slots=True)
class NewTicket:
    ticket_type: TicketType
    is_type_from_address: bool  # False: one address serves both; Type: decides


@dataclass(frozen=True, slots=True)
class Reply:
    ticket_number: str


@dataclass(frozen=True, slots=True)
class CommandMail:
    """A new mail whose subject is a command word: HELP/AIDE or LIST/LISTE."""

    command: SubjectCommand


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: IgnoreReason
    ticket_number: str | None  # the ticket it concerns, where known
    detail: str
    bounce: BounceFacts | None = None  # a bounce: which mail of ours, for whom


@dataclass(frozen=True, slots=True)
class Outsider:
    detail: str


Classification = NewTicket | Reply | CommandMail | Ignored | Outsider


def classify(
    mail: InboundMail, policy: HelpdeskPolicy, lookup: ThreadLookup
) -> Classification:
    """Say what mail is: machine mail, a reply, a new ticket or an outsider's."""
    machine = _machine_mail(mail, policy)
    ticket = _thread(mail, policy, lookup, is_machine=machine is not None)
    if machine is not None:
        reason, detail = machine
        if reason is IgnoreReason.BOUNCE:
            return _bounce(mail, policy, lookup, ticket, detail)
        return Ignored(reason, ticket, detail)
    if ticket is not None:
        return Reply(ticket)
    if not is_accepted(mail.sender.address, policy.accepted_domains):
        return Outsider(
            f"sender {mail.sender.address or '(none)'} is not in an accepted domain"
        )
    command = parse_subject_command(mail.subject)
    if command is not None:
        return CommandMail(command)
    return _new_ticket(mail, policy)


def _machine_mail(
    mail: InboundMail, policy: HelpdeskPolicy
) -> tuple[IgnoreReason, str] | None:
    auto = mail.auto
    if is_own_message_id(mail.message_id, policy.own_message_id_domain) or (
        auto.is_maild_loop and mail.sender.address == policy.own_address.lower()
    ):
        return IgnoreReason.LOOP, "our own mail came back"
    if auto.is_delivery_report:
        return IgnoreReason.BOUNCE, "delivery status report"
    if _BOUNCE_SENDERS.match(mail.sender.address):
        return IgnoreReason.BOUNCE, f"sent by {mail.sender.address}"
    if is_bare_bounce(mail):
        return IgnoreReason.BOUNCE, f"delivery failure from {mail.sender.address}"
    if auto.is_null_return_path:
        return IgnoreReason.BOUNCE, "null return path"
    if auto.auto_submitted and auto.auto_submitted != "no":
        return IgnoreReason.AUTO_REPLY, f"Auto-Submitted: {auto.auto_submitted}"
    if auto.has_x_autoreply:
        return IgnoreReason.AUTO_REPLY, "X-Autoreply header"
    if auto.precedence in _LIST_PRECEDENCE:
        return IgnoreReason.LIST, f"Precedence: {auto.precedence}"
    if auto.precedence == "auto_reply":
        return IgnoreReason.AUTO_REPLY, "Precedence: auto_reply"
    if auto.list_id:
        return IgnoreReason.LIST, "mailing list traffic"
    if auto.has_x_loop:  # after the list headers: a list's X-Loop stays list traffic
        return IgnoreReason.LOOP, "X-Loop header"
    sign = autoreply_sign(mail.subject, mail.text, is_reply=bool(mail.thread_refs))
    if sign is not None:
        return IgnoreReason.AUTO_REPLY, sign
    return None


def _bounce(
    mail: InboundMail,
    policy: HelpdeskPolicy,
    lookup: ThreadLookup,
    ticket: str | None,
    detail: str,
) -> Ignored:
    """A bounce, traced to the mail of ours it reports where it names one."""
    facts = read_bounce(mail, policy.own_message_id_domain)
    if ticket is None and facts.message_ids:
        ticket = lookup.ticket_for_message_ids(facts.message_ids)
    said = ": ".join(p for p in (facts.recipient, facts.reason) if p)
    return Ignored(
        IgnoreReason.BOUNCE, ticket, f"{detail}: {said}" if said else detail, facts
    )


def _thread(
    mail: InboundMail, policy: HelpdeskPolicy, lookup: ThreadLookup, *, is_machine: bool
) -> str | None:
    """The ticket a mail belongs to: by the mails of ours it answers, else by
    the number in its subject.

    Message-IDs hold an unguessable token, so naming one shows the sender
    was sent a mail about the ticket; a number is guessed by counting. A
    mail from a person that names a ticket by number alone counts as naming
    none unless its sender is on the ticket or staff (need to know); machine
    mail is only recorded, so its number is taken as it is.
    """
    if mail.thread_refs:
        number = lookup.ticket_for_message_ids(mail.thread_refs)
        if number is not None:
            return number
    number = number_in_subject(mail.subject, policy.tag)
    if number is None:
        return None
    parties = lookup.ticket_parties(number)
    if parties is None:
        return None
    sender = mail.sender.address.lower()
    if (
        sender in parties
        or sender in policy.staff
        or is_machine
        or sender in lookup.staff()
    ):
        return number
    return None


def _new_ticket(mail: InboundMail, policy: HelpdeskPolicy) -> NewTicket:
    incident, request = policy.incident_address, policy.request_address
    if incident == request:
        return NewTicket(TicketType.INCIDENT, is_type_from_address=False)
    for candidates in _recipient_layers(mail):
        if incident in candidates:
            return NewTicket(TicketType.INCIDENT, is_type_from_address=True)
        if request in candidates:
            return NewTicket(TicketType.REQUEST, is_type_from_address=True)
    return NewTicket(TicketType.INCIDENT, is_type_from_address=False)


def _recipient_layers(mail: InboundMail) -> tuple[frozenset[str], ...]:
    """Envelope first, then Delivered-To/X-Original-To, then To and Cc."""
    return (
        frozenset(a.lower() for a in mail.envelope_recipients),
        frozenset(a.lower() for a in mail.delivered_to),
        frozenset(p.address for p in mail.to + mail.cc),
    )
