"""The ports: what the use cases need from the world, declared once. No I/O.

Every interface the application layer speaks to is a Protocol here, in
domain types (maild/domain.py): the store (a transaction at a time), the
parser, the renderer, the message builder and the clock. The adapters
implement them: adapters/database (SQLAlchemy: SQLite, PostgreSQL) and
adapters/memory (the same invariants in a dict, for the fast tests), checked
by one contract test against all of them. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from maild.core.retention import BlobName, Dropped
from maild.domain import (
    Attachment,
    EventKind,
    InboundMail,
    MailDisposition,
    MailOrigin,
    MailRecord,
    MailState,
    Notification,
    OutboundMail,
    Person,
    Role,
    Ticket,
    TicketState,
    Timer,
)

Clock = Callable[[], datetime]

OPEN_STATES = frozenset(
    {TicketState.NEW, TicketState.IN_PROGRESS, TicketState.RESOLVED}
)


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """Which tickets a listing wants; every condition given must hold.

    Listings come most urgent first (call-back deadline, then number).
    """

    states: frozenset[TicketState] = OPEN_STATES
    party: str | None = None  # requester or beneficiary is this address
    owner: str | None = None  # owned by this address
    owner_or_pool: str | None = None  # owned by this address, or by no one
    is_callback_missed: bool = False  # the call-back deadline passed uncalled
    breach_before: datetime | None = None  # breach timer due at or before this


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to add to a ticket's history."""

    kind: EventKind
    actor: str  # an address, or MAILD for what maild does by itself
    at: datetime
    text: str
    message_id: str | None = None  # of the mail that caused it, or the one sent
    is_internal: bool = False
    mail_id: int | None = None  # the record of the mail that caused it


MAILD = "maild"  # the actor of what the daemon does by itself


class DeskSession(Protocol):
    """One transaction on the desk's store: all of it commits, or none."""

    # Tickets
    def next_sequence(self, counter: str) -> int: ...
    def add_ticket(self, ticket: Ticket) -> Ticket:
        """Insert a ticket (its id ignored); return it with its id."""

    def ticket_by_number(
        self, number: str, *, for_update: bool = False
    ) -> Ticket | None: ...
    def ticket_by_id(
        self, ticket_id: int, *, for_update: bool = False
    ) -> Ticket | None: ...
    def save_ticket(self, ticket: Ticket) -> None:
        """Write a changed ticket back (every field but id, number and token)."""

    def tickets(self, which: TicketFilter, limit: int) -> tuple[Ticket, ...]: ...
    def count_by_state(self) -> Mapping[TicketState, int]:
        """How many tickets are in each state that is not closed."""

    def tickets_opened_since(self, requester: str, since: datetime) -> int: ...
    def watchers(self, ticket_id: int) -> tuple[Person, ...]: ...
    def add_watchers(self, ticket_id: int, watchers: tuple[Person, ...]) -> None: ...
    def attachment_names(self, ticket_id: int) -> tuple[str, ...]: ...
    def add_event(self, ticket_id: int, event: NewEvent) -> int:
        """Add an event to a ticket's history; return its id."""

    def add_attachments(
        self,
        ticket_id: int,
        event_id: int | None,
        attachments: tuple[Attachment, ...],
    ) -> None: ...
    def opening_message_id(self, ticket_id: int) -> str | None:
        """The Message-ID of the mail that opened the ticket."""

    # Retention and erasure
    def drop_ticket_mails(self, ticket_id: int, now: datetime) -> Dropped:
        """Drop a ticket's raw mails and attachments; mark it purged at now."""

    def mail_fate(self, mail_id: int) -> tuple[MailState, datetime | None] | None:
        """What became of a mail and when it was handled, the row locked until
        the transaction ends (None: no such mail)."""

    def drop_mail_bytes(self, mail_id: int) -> Dropped:
        """Drop one mail's raw bytes; its record (what became of it) stays."""

    def rewrite_ticket(self, ticket_id: int, rewrite: Callable[[str], str]) -> Dropped:
        """Rewrite every text of a ticket (its events, watchers, mail records,
        sent mail records), drop its raw mails, attachments and the bytes of
        what was sent; return what was dropped, the sent Message-IDs too."""

    def rewrite_mail(self, mail_id: int, rewrite: Callable[[str], str]) -> Dropped:
        """Rewrite a mail's record and drop its bytes."""

    def rewrite_answers(self, address: str, alias: str) -> None:
        """Keep the answers counted for the caps under the pseudonym."""

    # Mails taken in
    def finish_mail(
        self,
        mail_id: int,
        state: MailState,
        reason: str,
        ticket_id: int | None,
        now: datetime,
        mail: InboundMail | None = None,
    ) -> None:
        """Record where a pending mail ended; MailAlreadyFinished if it had."""

    # Outgoing mail
    def enqueue(
        self, mail: OutboundMail, data: bytes, ticket_id: int | None, now: datetime
    ) -> None: ...
    def mark_bounced(self, message_ids: tuple[str, ...], error: str) -> str | None:
        """Mark the first queued mail among these as failed; return its id."""

    def answers_since(
        self,
        since: tuple[datetime, datetime],
        *,
        address: str = "",
        ticket_id: int = 0,
    ) -> tuple[int, int]:
        """Automatic answers sent (not held) to an address, or on a ticket, since
        each of two moments (the older first)."""

    def record_answer(
        self,
        address: str,
        at: datetime,
        *,
        is_held: bool,
        template: str,
        ticket_id: int | None,
    ) -> None: ...
    def was_answered_since(
        self, address: str, template: str, since: datetime
    ) -> bool: ...

    # Staff and the daily digest
    def staff(self) -> Mapping[str, Role]:
        """The staff added with the command line: address -> role."""

    def claim_digest_day(self, day: int) -> bool:
        """Mark the digests of a day (yymmdd) as sent; False if they were."""


class DeskStore(Protocol):
    """The store of tickets, mails and the outbox, a transaction at a time."""

    def transaction(
        self, *, relaxed: bool = False
    ) -> AbstractContextManager[DeskSession]: ...
    def register_mail(
        self, origin: MailOrigin, content_hash: str, raw: bytes, now: datetime
    ) -> MailRecord:
        """Record a mail taken in (or find its record) and count an attempt."""

    def refund_attempt(self, mail_id: int) -> MailRecord: ...

    # What classification looks up (core/classify.ThreadLookup)
    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None: ...
    def ticket_parties(self, number: str) -> frozenset[str] | None: ...
    def staff(self) -> Mapping[str, Role]: ...

    # What the SLA tick looks up
    def due_tickets(self, timer: Timer, now: datetime, limit: int) -> list[int]:
        """The ids of tickets whose timer is due at now, the earliest first."""


class RetentionStore(DeskStore, Protocol):
    """What the purge needs besides the desk's transactions."""

    def tickets_due_for_purge(
        self, closed_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        """Closed tickets not purged yet, closed before a moment, in the order
        of their closure (then id), after the one given (0: from the first)."""

    def mails_due_for_purge(
        self, handled_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        """Quarantined and ignored mails still with bytes, handled before."""

    def rehearsal(self) -> AbstractContextManager[DeskSession]:
        """A transaction that is always rolled back (a dry run)."""

    def blob_names(self, shas: Iterable[str]) -> list[BlobName]:
        """Every row that names one of these blobs: a kept mail, an attachment."""

    def sweep_blobs(self, limit: int) -> tuple[int, int]:
        """Look at up to limit blobs noted as dropped; remove those nothing
        names; return (looked at, removed)."""


@dataclass(frozen=True, slots=True)
class Named:
    """Where an address is: the tickets that name it (a party, owner, watcher,
    event author, or in the To or Cc of one of their kept mails) and the mails
    that name it on none of those tickets (sent by it, or to it in copy)."""

    tickets: tuple[int, ...]
    mails: tuple[int, ...]


class PersonStore(RetentionStore, Protocol):
    """What an erasure looks up before its transactions."""

    def naming(self, address: str) -> Named:
        """Where an address is, looked up once (headers of kept mails included)."""


class MailHandler(Protocol):
    """What the intakes hand each mail to (HandleMail, behind the daemon's guard):
    it commits the mail's effect and says where it ends; TransientError means
    the intake keeps the mail and tries later."""

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition: ...


class MailParser(Protocol):
    def parse(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> InboundMail: ...


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
    def __call__(
        self, mail: OutboundMail, from_address: str, from_name: str = ""
    ) -> bytes: ...
