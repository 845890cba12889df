"""Domain values shared by every step: tickets, people, mails, outcomes. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum


class TicketType(StrEnum):
    INCIDENT = "incident"
    REQUEST = "request"

    @property
    def letter(self) -> str:
        return "I" if self is TicketType.INCIDENT else "S"


class TicketState(StrEnum):
    NEW = "new"  # in the pool
    IN_PROGRESS = "in_progress"  # claimed by an owner
    RESOLVED = "resolved"  # waiting for the requester's verdict
    CLOSED = "closed"


class Urgency(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CloseReason(StrEnum):
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    AUTO_CLOSED = "auto_closed"


class EventKind(StrEnum):
    CREATED = "created"
    NOTIFIED = "notified"
    CLAIMED = "claimed"
    RELEASED = "released"
    ASSIGNED = "assigned"
    CALL = "call"
    PDR = "pdr"
    TASK = "task"
    NOTE = "note"
    COMMENT = "comment"
    RESOLVED = "resolved"
    REFUSED = "refused"
    ACCEPTED = "accepted"
    RATED = "rated"
    CANCELLED = "cancelled"
    REMINDER = "reminder"
    BREACH = "breach"
    REANNOUNCED = "reannounced"
    AUTO_CLOSED = "auto_closed"
    COMMAND_REFUSED = "command_refused"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    PURGED = "purged"  # retention removed its raw mails and attachments
    ANONYMISED = "anonymised"  # a person's data replaced by a pseudonym


class Role(StrEnum):
    REQUESTER = "requester"
    BENEFICIARY = "beneficiary"
    WATCHER = "watcher"
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"


class Audience(StrEnum):
    """Who a notification is written for; picks the template variant."""

    REQUESTER = "requester"  # requester, beneficiary and watchers
    POOL = "pool"  # the technicians' pool address
    OWNER = "owner"
    SUPERVISOR = "supervisor"
    TECHNICIAN = "technician"  # each technician, e.g. the morning digest
    SENDER = "sender"  # whoever wrote the mail being answered


class Timer(StrEnum):
    REMINDER = "reminder"  # the call-back deadline approaches
    BREACH = "breach"  # the call-back deadline passed without a call
    REANNOUNCE = "reannounce"  # still unclaimed: announce to the pool again
    PDR_RETRY = "pdr_retry"  # a call got no answer: time to call again
    AUTO_CLOSE = "auto_close"  # resolved with no answer for too long


@dataclass(frozen=True, slots=True)
class Timers:
    """When each SLA timer of a ticket is next due; None when it is not set."""

    reminder_at: datetime | None = None
    breach_at: datetime | None = None
    reannounce_at: datetime | None = None
    pdr_retry_at: datetime | None = None
    auto_close_at: datetime | None = None

    def due_at(self, timer: Timer) -> datetime | None:
        return {
            Timer.REMINDER: self.reminder_at,
            Timer.BREACH: self.breach_at,
            Timer.REANNOUNCE: self.reannounce_at,
            Timer.PDR_RETRY: self.pdr_retry_at,
            Timer.AUTO_CLOSE: self.auto_close_at,
        }[timer]


class MailState(StrEnum):
    """What became of a mail taken in, as its record says."""

    PENDING = "pending"  # taken in, not handled yet (or handling crashed)
    DONE = "done"  # a ticket or an event on one
    IGNORED = "ignored"  # auto-reply, bounce, list: recorded, not answered
    QUARANTINED = "quarantined"


FINAL_STATES = (MailState.DONE, MailState.IGNORED, MailState.QUARANTINED)


@dataclass(frozen=True, slots=True)
class MailRecord:
    """A mail's record: its id, where it stands, how many attempts it cost."""

    id: int
    state: MailState
    attempts: int
    reason: str
    is_new: bool  # first time this mail is seen


class OutboxState(StrEnum):
    PENDING = "pending"  # queued, or deferred until next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # refused for good (5xx), bounced, or out of attempts


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A queued mail the relay refused for good (or that bounced)."""

    message_id: str
    ticket_id: int | None
    recipients: tuple[str, ...]
    subject: str
    audience: str  # an Audience value, as the outbox row kept it
    error: str


class MailDisposition(StrEnum):
    """Where a handled mail ends: it decides the IMAP folder."""

    DONE = "done"  # a ticket, an event on a ticket, or ignored with a reason
    QUARANTINED = "quarantined"


class MailOutcome(StrEnum):
    """What a mail came to, as its log line (and `maild mails`) names it."""

    TICKET = "ticket"  # a new ticket
    REPLY = "reply"  # applied to its ticket, or a HELP/LIST answered
    IGNORED = "ignored"  # a robot's mail, recorded and never answered
    QUARANTINED = "quarantined"


class IgnoreReason(StrEnum):
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LIST = "list"
    LOOP = "loop"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    address: str  # lower-cased addr-spec

    def formatted(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # the sender's name: metadata only, never a path
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str = ""


@dataclass(frozen=True, slots=True)
class AutoSignals:
    """Headers that mark a mail as written by a machine (RFC 3834 and friends)."""

    auto_submitted: str = ""  # value of Auto-Submitted, lower-cased; "no" is human
    precedence: str = ""  # bulk | junk | list | ...
    has_x_autoreply: bool = False  # X-Autoreply or X-Autorespond
    list_id: str = ""  # List-Id or List-Unsubscribe present
    is_null_return_path: bool = False  # Return-Path: <> or empty envelope sender
    is_delivery_report: bool = False  # multipart/report; report-type=delivery-status
    is_maild_loop: bool = False  # our own loop header came back
    has_x_loop: bool = False  # X-Loop, of any value: some system's loop mark
    # X-Auto-Response-Suppress names All, OOF or AutoReply: no automatic answer
    # (Outlook also puts it on mail people write, so the mail is not ignored).
    is_answer_suppressed: bool = False


@dataclass(frozen=True, slots=True)
class AuthResultsBlock:
    """Authentication-Results fields that stood next to each other in the header.

    Kept raw (no RFC 2047 decoding, no unquoting): an authserv-id is compared
    byte for byte with the trusted ones (RFC 8601 section 5). `received_above`
    counts the Received fields above the block, which tells the trusted MTA's
    own fields (above its Received, or just below it) from copies the sender
    wrote further down.
    """

    values: tuple[str, ...]  # top to bottom
    received_above: int = 0


@dataclass(frozen=True, slots=True)
class InboundMail:
    """Everything later steps need from a mail, so nothing re-reads its bytes."""

    message_id: str  # without angle brackets; "" when absent
    sender: Person  # From
    reply_to: tuple[Person, ...]
    subject: str  # decoded, line breaks removed
    text: str  # the plain text body (HTML-only mail converted)
    to: tuple[Person, ...]
    cc: tuple[Person, ...]
    envelope_sender: str | None  # SMTP MAIL FROM / Return-Path; "" is the null path
    envelope_recipients: tuple[str, ...]  # SMTP RCPT TO, when known
    delivered_to: tuple[str, ...]  # Delivered-To and X-Original-To
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    auto: AutoSignals
    is_high_importance: bool  # Importance: high, X-Priority 1/2, Priority: urgent
    authentication_results: tuple[AuthResultsBlock, ...]  # top to bottom
    attachments: tuple[Attachment, ...]
    raw_size: int
    content_hash: str  # sha256 of the bytes without trace headers
    date: datetime | None = None
    # The text written in the mail itself, where it encloses messages inline
    # (message/rfc822 shown, not attached); None when it encloses none. Commands
    # are read from this text only: a forwarded mail's lines are not the sender's.
    own_text: str | None = None

    @property
    def command_text(self) -> str:
        """The text commands are read from: the mail's own, not what it encloses."""
        return self.text if self.own_text is None else self.own_text

    @property
    def thread_refs(self) -> tuple[str, ...]:
        return self.in_reply_to + self.references


@dataclass(frozen=True, slots=True)
class TicketFields:
    """What the `Key: value` lines at the top of a new ticket's body said."""

    application: str = ""
    urgency: Urgency | None = None
    beneficiary: Person | None = None
    phone: str = ""
    ticket_type: TicketType | None = None
    description: str = ""  # the body without the field lines


@dataclass(frozen=True, slots=True)
class TicketNumber:
    ticket_type: TicketType
    day: str  # yymmdd in the calendar's time zone
    sequence: int

    def __str__(self) -> str:
        return f"{self.ticket_type.letter}{self.day}_{self.sequence:04d}"


@dataclass(frozen=True, slots=True)
class OutboundMail:
    """A notification rendered and ready to queue; the Message-ID is fixed here."""

    message_id: str  # without angle brackets
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    ticket_number: str = ""
    audience: Audience = Audience.REQUESTER
    is_capped: bool = False  # goes to people outside the staff: answer caps apply
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """The call-back SLA and its business calendar, as configured."""

    callback: dict[Urgency, timedelta]  # business time per urgency
    timezone: str = "Europe/Paris"
    business_start: time = time(8, 0)
    business_end: time = time(18, 0)
    business_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday is 0
    holidays: str = "FR"  # country code, "" for none
    reminder_at: float = 0.75
    reannounce_every: timedelta = timedelta(minutes=30)
    pdr_retry_after: timedelta = timedelta(hours=2)
    auto_close_after: timedelta = timedelta(days=7)
    digest_at: time = time(8, 30)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket as the store keeps it: what the use cases read and change.

    Frozen: a change is a new value (dataclasses.replace), which the store
    saves; watchers, events and attachments are kept apart.
    """

    id: int
    number: str
    token: str  # the unguessable part of our Message-IDs about it
    ticket_type: TicketType
    status: TicketState
    subject: str
    description: str
    requester: Person
    beneficiary: Person
    application: str
    urgency: Urgency
    phone: str
    owner: str | None
    created_at: datetime
    callback_due_at: datetime | None
    timers: Timers = Timers()
    first_call_at: datetime | None = None
    callback_met: bool | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    rating_score: int | None = None
    rating_comment: str | None = None
    source_mail_id: int | None = None
    # The trusted MTA's verdict when it did not vouch for the requester's
    # address (e.g. "dmarc=fail"): while set, only staff are told of the
    # ticket; the first mail a staff member writes on it clears it.
    unverified_sender: str = ""


@dataclass(frozen=True, slots=True)
class TicketView:
    """What a notification may say about a ticket; built by core/notify.py."""

    number: str
    ticket_type: TicketType
    status: TicketState
    subject: str
    description: str
    requester: Person
    beneficiary: Person
    application: str
    urgency: Urgency
    phone: str
    owner: str | None
    created_at: datetime
    callback_due_at: datetime | None
    watchers: tuple[Person, ...] = ()
    attachment_names: tuple[str, ...] = ()
    first_call_at: datetime | None = None
    unverified_sender: str = ""  # the trusted MTA's verdict, while staff alone know


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One line of a transcript: a command done, or refused with a reason code."""

    line: str  # the line as the sender wrote it
    is_done: bool
    reason: str = ""  # code when refused, e.g. not_owner, wrong_state, near_keyword
    detail: str = ""  # e.g. the owner who has the ticket, a suggested keyword


@dataclass(frozen=True, slots=True)
class Notice:
    """What one mail says: the typed context of its template.

    One subclass a template (or a family of templates), in core/notices.py;
    the renderer gives its fields to the template under their own names.
    """


@dataclass(frozen=True, slots=True)
class Notification:
    """A mail to write: which template, for whom, saying what. Rendered by adapters.

    template + audience pick `templates/<lang>/<template>.<audience>.{txt,html}.j2`;
    the notice is that template's context, the rest is the envelope.
    """

    template: str  # e.g. "confirmation", "announcement"
    audience: Audience
    to: tuple[str, ...]
    notice: Notice
    in_reply_to: str = ""  # Message-ID of the mail being answered
    is_capped: bool = False  # to people outside the staff: answer caps apply
    attachments: tuple[Attachment, ...] = ()  # travel with a forwarded comment

    @property
    def ticket(self) -> TicketView | None:
        """The ticket the mail is about, if its notice names one: it tags subjects."""
        ticket = getattr(self.notice, "ticket", None)
        return ticket if isinstance(ticket, TicketView) else None


@dataclass(frozen=True, slots=True)
class MailOrigin:
    """Where a mail came from: its place in a mailbox, or the SMTP envelope.

    An IMAP mail is known by (source, uidvalidity, uid); any mail also by the
    hash of its bytes without trace headers.
    """

    source: str  # "imap:<user>/<mailbox>", "smtp" or "replay"
    uidvalidity: int | None = None
    uid: int | None = None
    envelope_sender: str | None = None  # MAIL FROM; "" is the null return path
    envelope_recipients: tuple[str, ...] = ()
    size: int | None = None  # as announced by the server (RFC822.SIZE)
