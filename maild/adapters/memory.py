"""The desk's store in memory: a DeskStore (maild/app/ports.py) for fast tests. No I/O.

A real adapter, not a mock: it keeps the database's invariants (unique
ticket numbers, tokens, watchers and outgoing Message-IDs, counters, a mail
finished once, a mail found again by its place or its bytes, no row about a
ticket that does not exist, no naive moment), a transaction commits all of
its changes or none, and transactions of several threads take turns. The
contract test (tests/adapters/test_store_contract.py) runs the same checks on
it, SQLite and PostgreSQL. It also serves the outbox sender's queue.

Every change goes through `_Tables.put` or `_Tables.append`, which note how
to undo it; a transaction that raises undoes its notes, newest first. Values
kept are immutable, so what a caller holds never changes under it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TypeVar

from maild.adapters.outgoing.outbox import Due
from maild.app.ports import OPEN_STATES, Named, NewEvent, TicketFilter
from maild.core.erasure import headers_name
from maild.core.retention import BlobName, Dropped
from maild.domain import (
    Attachment,
    EventKind,
    FailedDelivery,
    InboundMail,
    MailOrigin,
    MailRecord,
    MailState,
    OutboundMail,
    OutboxState,
    Person,
    Role,
    Ticket,
    TicketState,
    Timer,
)
from maild.errors import MailAlreadyFinished

K = TypeVar("K")
V = TypeVar("V")
Place = tuple[str, int | None, int | None]  # source, UIDVALIDITY, UID

_DIGEST_COUNTER = "digest"  # shares the counters, as in the database
_ERROR_CHARS = 2000  # of an error kept on a queued mail, as in the database
_SUBJECT_CHARS = 998  # of a subject kept on a mail's record, as in the database


@dataclass(frozen=True, slots=True)
class KeptMail:
    """A mail taken in, as its record keeps it (with its bytes)."""

    id: int
    origin: MailOrigin
    content_hash: str
    raw: bytes
    state: MailState
    attempts: int
    reason: str
    ticket_id: int | None
    received_at: datetime
    handled_at: datetime | None = None
    message_id: str = ""
    sender: str = ""
    subject: str = ""
    is_kept: bool = True  # its bytes: False once retention or erasure dropped them


@dataclass(frozen=True, slots=True)
class Queued:
    """A mail in the outbox: what was queued and where its delivery stands."""

    id: int
    mail: OutboundMail
    data: bytes
    ticket_id: int | None
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An automatic answer to someone outside the staff, sent or held."""

    address: str
    at: datetime
    is_held: bool
    template: str
    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class KeptEvent:
    id: int
    ticket_id: int
    event: NewEvent


@dataclass(frozen=True, slots=True)
class KeptAttachment:
    ticket_id: int
    event_id: int | None
    attachment: Attachment


@dataclass
class _Tables:
    """Everything the store keeps, with the indexes its look-ups use."""

    tickets: dict[int, Ticket] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    watchers: dict[int, tuple[Person, ...]] = field(default_factory=dict)
    events: dict[int, list[KeptEvent]] = field(default_factory=dict)  # by ticket
    attachments: dict[int, list[KeptAttachment]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    mails: dict[int, KeptMail] = field(default_factory=dict)
    mail_places: dict[Place, int] = field(default_factory=dict)
    mail_hashes: dict[str, int] = field(default_factory=dict)  # the first record
    outbox: dict[int, Queued] = field(default_factory=dict)
    outbox_ids: dict[str, int] = field(default_factory=dict)  # by Message-ID
    pending: dict[int, None] = field(default_factory=dict)  # queued, not done
    answers: list[Answer] = field(default_factory=list)
    answers_to: dict[str, list[Answer]] = field(default_factory=dict)
    answers_on: dict[int, list[Answer]] = field(default_factory=dict)
    staff: dict[str, Role] = field(default_factory=dict)
    purged: dict[int, datetime] = field(default_factory=dict)  # ticket -> when
    to_sweep: dict[str, None] = field(default_factory=dict)  # blobs let go
    swept: list[str] = field(default_factory=list)  # blobs "removed", in order
    last_id: int = 0  # one sequence for every kind of row, never taken back
    undo: list[Callable[[], object]] = field(default_factory=list)

    def put(self, table: dict[K, V], key: K, value: V) -> None:
        """Set table[key], noting how to undo it."""
        if key in table:
            self.undo.append(partial(table.__setitem__, key, table[key]))
        else:
            self.undo.append(partial(table.pop, key))
        table[key] = value

    def drop(self, table: dict[K, V], key: K) -> None:
        """Remove table[key] if there, noting how to undo it."""
        if key in table:
            self.undo.append(partial(table.__setitem__, key, table.pop(key)))

    def append(self, items: list[V], value: V) -> None:
        """Append to a list, noting how to undo it."""
        self.undo.append(items.pop)
        items.append(value)

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id


class MemorySession:
    """One transaction on the memory store: a DeskSession."""

    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    # Tickets

    def next_sequence(self, counter: str) -> int:
        value = self._t.counters.get(counter, 0) + 1
        self._t.put(self._t.counters, counter, value)
        return value

    def add_ticket(self, ticket: Ticket) -> Ticket:
        """Insert a ticket (its id ignored); return it with its id."""
        if ticket.number in self._t.numbers or ticket.token in self._t.tokens:
            raise ValueError(f"ticket number or token taken: {ticket.number}")
        _check_aware(ticket)
        added = replace(ticket, id=self._t.new_id())
        self._t.put(self._t.tickets, added.id, added)
        self._t.put(self._t.numbers, added.number, added.id)
        self._t.put(self._t.tokens, added.token, added.id)
        return added

    def ticket_by_number(
        self, number: str, *, for_update: bool = False
    ) -> Ticket | None:
        """The ticket; for_update needs nothing more: transactions take turns."""
        ticket_id = self._t.numbers.get(number)
        return self._t.tickets[ticket_id] if ticket_id is not None else None

    def ticket_by_id(
        self, ticket_id: int, *, for_update: bool = False
    ) -> Ticket | None:
        return self._t.tickets.get(ticket_id)

    def save_ticket(self, ticket: Ticket) -> None:
        """Write a changed ticket back (every field but id, number and token)."""
        stored = self._ticket(ticket.id)
        _check_aware(ticket)
        saved = replace(ticket, number=stored.number, token=stored.token)
        self._t.put(self._t.tickets, ticket.id, saved)

    def tickets(self, which: TicketFilter, limit: int) -> tuple[Ticket, ...]:
        """The tickets a filter asks for, most urgent call-back first."""
        found = [t for t in self._t.tickets.values() if _matches(t, which)]
        found.sort(key=_urgency)
        return tuple(found[:limit])

    def count_by_state(self) -> Mapping[TicketState, int]:
        counts = {s: 0 for s in TicketState if s in OPEN_STATES}
        for ticket in self._t.tickets.values():
            if ticket.status in counts:
                counts[ticket.status] += 1
        return counts

    def tickets_opened_since(self, requester: str, since: datetime) -> int:
        return sum(
            t.requester.address == requester and t.created_at >= since
            for t in self._t.tickets.values()
        )

    def watchers(self, ticket_id: int) -> tuple[Person, ...]:
        return self._t.watchers.get(ticket_id, ())

    def add_watchers(self, ticket_id: int, watchers: tuple[Person, ...]) -> None:
        self._ticket(ticket_id)
        kept = self._t.watchers.get(ticket_id, ())
        addresses = [w.address for w in (*kept, *watchers)]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"a watcher twice on ticket {ticket_id}")
        if watchers:
            self._t.put(self._t.watchers, ticket_id, kept + watchers)

    def attachment_names(self, ticket_id: int) -> tuple[str, ...]:
        kept = self._t.attachments.get(ticket_id, ())
        return tuple(a.attachment.filename for a in kept)

    def add_event(self, ticket_id: int, event: NewEvent) -> int:
        self._ticket(ticket_id)
        if event.at.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        kept = KeptEvent(self._t.new_id(), ticket_id, event)
        self._t.append(self._t.events.setdefault(ticket_id, []), kept)
        return kept.id

    def add_attachments(
        self,
        ticket_id: int,
        event_id: int | None,
        attachments: tuple[Attachment, ...],
    ) -> None:
        self._ticket(ticket_id)
        for attachment in attachments:
            kept = KeptAttachment(ticket_id, event_id, attachment)
            self._t.append(self._t.attachments.setdefault(ticket_id, []), kept)

    def opening_message_id(self, ticket_id: int) -> str | None:
        events = self._t.events.get(ticket_id, ())
        return next(
            (e.event.message_id for e in events if e.event.kind is EventKind.CREATED),
            None,
        )

    # Retention and erasure

    def drop_ticket_mails(self, ticket_id: int, now: datetime) -> Dropped:
        dropped = self._drop_ticket_bytes(ticket_id)
        self._t.put(self._t.purged, ticket_id, now)
        return dropped

    def _drop_ticket_bytes(self, ticket_id: int) -> Dropped:
        t = self._t
        self._ticket(ticket_id)
        mails = [m for m in t.mails.values() if m.ticket_id == ticket_id and m.is_kept]
        for kept in mails:
            t.put(t.mails, kept.id, replace(kept, raw=b"", is_kept=False))
        attached = t.attachments.get(ticket_id, [])
        t.put(t.attachments, ticket_id, [])
        sent: list[str] = []
        for queued in [q for q in t.outbox.values() if q.ticket_id == ticket_id]:
            if queued.state is not OutboxState.PENDING:
                t.put(t.outbox, queued.id, replace(queued, data=b""))
                sent.append(queued.mail.message_id)
        shas = frozenset(
            [_sha(m.raw) for m in mails] + [_sha(a.attachment.data) for a in attached]
        )
        for sha in shas:
            t.put(t.to_sweep, sha, None)
        return Dropped(len(mails), len(attached), shas, tuple(sorted(sent)))

    def mail_fate(self, mail_id: int) -> tuple[MailState, datetime | None] | None:
        kept = self._t.mails.get(mail_id)
        return None if kept is None else (kept.state, kept.handled_at)

    def drop_mail_bytes(self, mail_id: int) -> Dropped:
        kept = self._t.mails.get(mail_id)
        if kept is None or not kept.is_kept:
            return Dropped()
        self._t.put(self._t.mails, mail_id, replace(kept, raw=b"", is_kept=False))
        self._t.put(self._t.to_sweep, _sha(kept.raw), None)
        return Dropped(mails=1, blobs=frozenset({_sha(kept.raw)}))

    def rewrite_ticket(self, ticket_id: int, rewrite: Callable[[str], str]) -> Dropped:
        t = self._t
        dropped = self._drop_ticket_bytes(ticket_id)
        t.put(t.tickets, ticket_id, _rewritten(self._ticket(ticket_id), rewrite))
        watchers = t.watchers.get(ticket_id, ())
        t.put(t.watchers, ticket_id, tuple(_person(w, rewrite) for w in watchers))
        events = [
            replace(e, event=replace(
                e.event, actor=rewrite(e.event.actor), text=rewrite(e.event.text),
                message_id=e.event.message_id and rewrite(e.event.message_id)))
            for e in t.events.get(ticket_id, [])
        ]  # fmt: skip
        t.put(t.events, ticket_id, events)
        for kept in [m for m in t.mails.values() if m.ticket_id == ticket_id]:
            t.put(t.mails, kept.id, _mail_rewritten(kept, rewrite))
        for queued in [q for q in t.outbox.values() if q.ticket_id == ticket_id]:
            to = tuple(rewrite(a) for a in queued.mail.to)
            if queued.state is OutboxState.PENDING and to != queued.mail.to:
                t.drop(t.outbox, queued.id)
                t.drop(t.outbox_ids, queued.mail.message_id)
                t.drop(t.pending, queued.id)
                continue
            mail = replace(queued.mail, to=to, subject=rewrite(queued.mail.subject))
            t.put(t.outbox, queued.id, replace(queued, mail=mail))
        self._rewrite_answers(lambda a: a.ticket_id == ticket_id, rewrite)
        return dropped

    def rewrite_mail(self, mail_id: int, rewrite: Callable[[str], str]) -> Dropped:
        dropped = self.drop_mail_bytes(mail_id)
        kept = self._t.mails.get(mail_id)
        if kept is not None:
            self._t.put(self._t.mails, mail_id, _mail_rewritten(kept, rewrite))
        return dropped

    def rewrite_answers(self, address: str, alias: str) -> None:
        self._rewrite_answers(
            lambda a: a.address == address, lambda text: text.replace(address, alias)
        )

    def _rewrite_answers(
        self, which: Callable[[Answer], bool], rewrite: Callable[[str], str]
    ) -> None:
        t = self._t
        if not any(which(a) for a in t.answers):
            return
        old = (list(t.answers), dict(t.answers_to), dict(t.answers_on))

        def undo() -> None:
            t.answers[:] = old[0]
            t.answers_to.clear()
            t.answers_to.update(old[1])
            t.answers_on.clear()
            t.answers_on.update(old[2])

        t.undo.append(undo)
        answers = [
            replace(a, address=rewrite(a.address)) if which(a) else a for a in t.answers
        ]
        t.answers[:] = answers
        t.answers_to.clear()
        t.answers_on.clear()
        for a in answers:
            t.answers_to.setdefault(a.address, []).append(a)
            if a.ticket_id is not None:
                t.answers_on.setdefault(a.ticket_id, []).append(a)

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
        kept = self._t.mails.get(mail_id)
        if kept is None:
            raise LookupError(mail_id)
        if kept.state is not MailState.PENDING:
            raise MailAlreadyFinished(mail_id, kept.state)
        kept = replace(
            kept, state=state, reason=reason, ticket_id=ticket_id, handled_at=now
        )
        if mail is not None:
            kept = replace(
                kept,
                message_id=mail.message_id[:998],
                sender=mail.sender.address[:320],
                subject=mail.subject[:_SUBJECT_CHARS],
            )
        self._t.put(self._t.mails, mail_id, kept)

    # Outgoing mail

    def enqueue(
        self, mail: OutboundMail, data: bytes, ticket_id: int | None, now: datetime
    ) -> None:
        if mail.message_id in self._t.outbox_ids:
            raise ValueError(f"Message-ID queued already: {mail.message_id}")
        if ticket_id is not None:
            self._ticket(ticket_id)
        queued = Queued(
            self._t.new_id(),
            mail,
            data,
            ticket_id,
            OutboxState.PENDING,
            0,
            now,
            "",
            now,
        )
        self._t.put(self._t.outbox, queued.id, queued)
        self._t.put(self._t.outbox_ids, mail.message_id, queued.id)
        self._t.put(self._t.pending, queued.id, None)

    def mark_bounced(self, message_ids: tuple[str, ...], error: str) -> str | None:
        """Mark the first queued mail among these as failed; return its id."""
        for message_id in message_ids:
            outbox_id = self._t.outbox_ids.get(message_id)
            if outbox_id is not None:
                queued = self._t.outbox[outbox_id]
                failed = replace(queued, state=OutboxState.FAILED, last_error=error)
                _set_queued(self._t, failed)
                return message_id
        return None

    def mark_failed(self, outbox_id: int, error: str) -> FailedDelivery | None:
        """Mark a queued mail failed for good (an attempt more); None if unknown."""
        queued = self._t.outbox.get(outbox_id)
        if queued is None:
            return None
        _set_queued(
            self._t,
            replace(
                queued,
                state=OutboxState.FAILED,
                attempts=queued.attempts + 1,
                last_error=error[:_ERROR_CHARS],
            ),
        )
        mail = queued.mail
        return FailedDelivery(
            mail.message_id,
            queued.ticket_id,
            mail.to,
            mail.subject,
            mail.audience.value,
            error,
        )

    def answers_since(
        self,
        since: tuple[datetime, datetime],
        *,
        address: str = "",
        ticket_id: int = 0,
    ) -> tuple[int, int]:
        oldest, newest = since
        answers = (
            self._t.answers_on.get(ticket_id, ())
            if ticket_id
            else self._t.answers_to.get(address, ())
        )
        sent = [a.at for a in answers if not a.is_held]
        return sum(at >= oldest for at in sent), sum(at >= newest for at in sent)

    def record_answer(
        self,
        address: str,
        at: datetime,
        *,
        is_held: bool,
        template: str,
        ticket_id: int | None,
    ) -> None:
        t = self._t
        answer = Answer(address, at, is_held, template, ticket_id)
        t.append(t.answers, answer)
        t.append(t.answers_to.setdefault(address, []), answer)
        if ticket_id is not None:
            t.append(t.answers_on.setdefault(ticket_id, []), answer)

    def was_answered_since(self, address: str, template: str, since: datetime) -> bool:
        return any(
            a.template == template and a.at >= since
            for a in self._t.answers_to.get(address, ())
        )

    # Staff and the daily digest

    def staff(self) -> Mapping[str, Role]:
        return dict(self._t.staff)

    def claim_digest_day(self, day: int) -> bool:
        if self._t.counters.get(_DIGEST_COUNTER, 0) >= day:
            return False
        self._t.put(self._t.counters, _DIGEST_COUNTER, day)
        return True

    def _ticket(self, ticket_id: int) -> Ticket:
        """The ticket a row refers to; LookupError as a foreign key would refuse."""
        ticket = self._t.tickets.get(ticket_id)
        if ticket is None:
            raise LookupError(f"no ticket {ticket_id}")
        return ticket


class MemoryStore:
    """The desk's store in memory: a DeskStore and the outbox sender's queue."""

    def __init__(self) -> None:
        self._t = _Tables()
        # One transaction at a time, as SQLite's write lock; reentrant so that
        # a look-up made inside a transaction reads, and a transaction opened
        # inside another is refused rather than waiting for ever.
        self._lock = threading.RLock()
        self._open = threading.local()

    @contextmanager
    def transaction(self, *, relaxed: bool = False) -> Iterator[MemorySession]:
        """Open a transaction; all its changes stay, or none on an exception.

        relaxed: accepted and ignored (there is no disk to spare).
        """
        with self._lock:
            if getattr(self._open, "is_open", False):
                raise RuntimeError("a transaction inside a transaction")
            self._open.is_open = True
            undo = self._t.undo
            undo.clear()
            try:
                yield MemorySession(self._t)
            except BaseException:
                while undo:
                    undo.pop()()
                raise
            finally:
                undo.clear()
                self._open.is_open = False

    # Mails taken in

    def register_mail(
        self, origin: MailOrigin, content_hash: str, raw: bytes, now: datetime
    ) -> MailRecord:
        """Record a mail taken in (or find its record) and count an attempt."""
        with self.transaction(relaxed=True):
            t = self._t
            kept = self._find_mail(origin, content_hash)
            if kept is None:
                kept = KeptMail(
                    t.new_id(), origin, content_hash, raw, MailState.PENDING,
                    1, "", None, now,
                )  # fmt: skip
                t.put(t.mails, kept.id, kept)
                t.put(t.mail_places, _place(origin), kept.id)
                if content_hash not in t.mail_hashes:
                    t.put(t.mail_hashes, content_hash, kept.id)
                return _record(kept, is_new=True)
            if kept.state is MailState.PENDING:
                kept = replace(kept, attempts=kept.attempts + 1)
                t.put(t.mails, kept.id, kept)
            return _record(kept, is_new=False)

    def refund_attempt(self, mail_id: int) -> MailRecord:
        with self.transaction(relaxed=True):
            kept = self._t.mails.get(mail_id)
            if kept is None:
                raise LookupError(mail_id)
            if kept.state is MailState.PENDING and kept.attempts > 0:
                kept = replace(kept, attempts=kept.attempts - 1)
                self._t.put(self._t.mails, mail_id, kept)
            return _record(kept, is_new=False)

    def _find_mail(self, origin: MailOrigin, content_hash: str) -> KeptMail | None:
        """By its place in the mailbox, else the first record of the same bytes."""
        mail_id = None
        if origin.uid is not None and origin.uidvalidity is not None:
            mail_id = self._t.mail_places.get(_place(origin))
        if mail_id is None:
            mail_id = self._t.mail_hashes.get(content_hash)
        return self._t.mails[mail_id] if mail_id is not None else None

    # What classification and the SLA tick look up

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        with self._lock:
            for message_id in message_ids[-50:]:
                outbox_id = self._t.outbox_ids.get(message_id)
                if outbox_id is None:
                    continue
                ticket_id = self._t.outbox[outbox_id].ticket_id
                if ticket_id is not None:
                    return self._t.tickets[ticket_id].number
            return None

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        with self._lock:
            ticket_id = self._t.numbers.get(number)
            if ticket_id is None:
                return None
            ticket = self._t.tickets[ticket_id]
            watchers = self._t.watchers.get(ticket_id, ())
            return frozenset(
                a.lower()
                for a in (
                    ticket.requester.address,
                    ticket.beneficiary.address,
                    ticket.owner or "",
                    *(w.address for w in watchers),
                )
                if a
            )

    def staff(self) -> Mapping[str, Role]:
        with self._lock:
            return dict(self._t.staff)

    def due_tickets(self, timer: Timer, now: datetime, limit: int) -> list[int]:
        """The ids of tickets whose timer is due at now, the earliest first."""
        with self._lock:
            due = [
                (at, t.id)
                for t in self._t.tickets.values()
                if (at := t.timers.due_at(timer)) is not None and at <= now
            ]
        return [ticket_id for _, ticket_id in sorted(due)[:limit]]

    # The outbox sender's queue (maild/adapters/outgoing/outbox.py)

    def take_due(self, now: datetime, limit: int) -> list[Due]:
        """One process, one sender: the due mails, as due_outbox."""
        return self.due_outbox(now, limit)

    def due_outbox(self, now: datetime, limit: int) -> list[Due]:
        with self._lock:
            queued = [self._t.outbox[i] for i in sorted(self._t.pending)]
        due = [q for q in queued if q.next_attempt_at <= now][:limit]
        return [
            Due(
                q.id,
                q.mail.message_id,
                q.mail.to,
                q.data,
                q.attempts,
                q.mail.ticket_number or None,
            )
            for q in due
        ]

    def mark_sent(self, outbox_ids: Sequence[int], now: datetime) -> None:
        with self.transaction(relaxed=True):
            for outbox_id in outbox_ids:
                queued = self._t.outbox.get(outbox_id)
                if queued is not None and queued.state is OutboxState.PENDING:
                    sent = replace(
                        queued,
                        state=OutboxState.SENT,
                        sent_at=now,
                        attempts=queued.attempts + 1,
                        last_error="",
                    )
                    _set_queued(self._t, sent)

    def defer(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        with self.transaction(relaxed=True):
            queued = self._t.outbox.get(outbox_id)
            if queued is not None:
                deferred = replace(
                    queued,
                    attempts=queued.attempts + 1,
                    last_error=error[:_ERROR_CHARS],
                    next_attempt_at=next_attempt_at,
                )
                _set_queued(self._t, deferred)

    def outbox_counts(self) -> Mapping[OutboxState, int]:
        with self._lock:
            counts: dict[OutboxState, int] = {}
            for queued in self._t.outbox.values():
                counts[queued.state] = counts.get(queued.state, 0) + 1
            return counts

    # For tests: staff added as the command line would, and what is kept

    # Retention and erasure (app/purge.py, app/anonymise.py)

    def tickets_due_for_purge(
        self, closed_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        with self._lock:
            due = sorted(
                (t.closed_at, t.id)
                for t in self._t.tickets.values()
                if t.id not in self._t.purged
                and t.status is TicketState.CLOSED
                and t.closed_at is not None
                and t.closed_at < closed_before
            )
            after = self._t.tickets.get(after_id)
            if after is not None and after.closed_at is not None:
                due = [d for d in due if d > (after.closed_at, after_id)]
            return [ticket_id for _, ticket_id in due[:limit]]

    def mails_due_for_purge(
        self, handled_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        with self._lock:
            return sorted(
                m.id
                for m in self._t.mails.values()
                if m.id > after_id
                and m.is_kept
                and m.state in (MailState.QUARANTINED, MailState.IGNORED)
                and m.handled_at is not None
                and m.handled_at < handled_before
            )[:limit]

    @contextmanager
    def rehearsal(self) -> Iterator[MemorySession]:
        """A transaction always undone: a dry run."""

        class _Rehearsed(Exception):
            pass

        try:
            with self.transaction() as tx:
                yield tx
                raise _Rehearsed
        except _Rehearsed:
            pass  # undone, as asked

    def blob_names(self, shas: Iterable[str]) -> list[BlobName]:
        wanted = set(shas)
        with self._lock:
            t = self._t
            names = [
                BlobName(_sha(m.raw), m.ticket_id, m.id)
                for m in t.mails.values()
                if m.is_kept and _sha(m.raw) in wanted
            ]
            for kept in t.attachments.values():
                names += [
                    BlobName(_sha(a.attachment.data), a.ticket_id, None)
                    for a in kept
                    if _sha(a.attachment.data) in wanted
                ]
            return names

    def sweep_blobs(self, limit: int) -> tuple[int, int]:
        with self.transaction():
            t = self._t
            shas = sorted(t.to_sweep)[:limit]
            gone = [s for s in shas if s not in _named(t)]
            for sha in shas:
                t.drop(t.to_sweep, sha)
            for sha in gone:
                t.append(t.swept, sha)
            return len(shas), len(gone)

    def naming(self, address: str) -> Named:
        with self._lock:
            in_headers = [
                m
                for m in self._t.mails.values()
                if m.is_kept and headers_name(m.raw, address)
            ]
            sent = [m for m in self._t.mails.values() if m.sender == address]
            tickets = set(self._tickets_naming(address))
            tickets |= {m.ticket_id for m in in_headers if m.ticket_id is not None}
            mails = {m.id for m in [*sent, *in_headers] if m.ticket_id not in tickets}
            return Named(tuple(sorted(tickets)), tuple(sorted(mails)))

    def _tickets_naming(self, address: str) -> list[int]:
        """Called with the lock held (naming)."""
        t = self._t
        found = {
            i
            for i, k in t.tickets.items()
            if address in (k.requester.address, k.beneficiary.address, k.owner)
        }
        found |= {
            i for i, ws in t.watchers.items() if any(w.address == address for w in ws)
        }
        found |= {
            i for i, es in t.events.items() if any(e.event.actor == address for e in es)
        }
        return sorted(found)

    def purged_at(self, ticket_id: int) -> datetime | None:
        with self._lock:
            return self._t.purged.get(ticket_id)

    def add_staff(self, address: str, role: Role) -> None:
        with self.transaction():
            self._t.put(self._t.staff, address.lower(), role)

    def outbox(self) -> tuple[Queued, ...]:
        """The queued mails (OutboundMail and bytes), in the order queued."""
        with self._lock:
            return tuple(self._t.outbox.values())

    def events(self, ticket_id: int) -> tuple[NewEvent, ...]:
        with self._lock:
            return tuple(e.event for e in self._t.events.get(ticket_id, ()))

    def attachments(self, ticket_id: int) -> tuple[KeptAttachment, ...]:
        with self._lock:
            return tuple(self._t.attachments.get(ticket_id, ()))

    def mail_record(self, mail_id: int) -> KeptMail:
        """A mail's record, bytes included; KeyError if there is none."""
        with self._lock:
            return self._t.mails[mail_id]

    def mail_records(self) -> tuple[KeptMail, ...]:
        with self._lock:
            return tuple(self._t.mails.values())

    def tickets(self) -> tuple[Ticket, ...]:
        with self._lock:
            return tuple(self._t.tickets.values())

    def answers(self) -> tuple[Answer, ...]:
        with self._lock:
            return tuple(self._t.answers)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _named(tables: _Tables) -> set[str]:
    """The blobs some kept mail or attachment names (as the database's keys)."""
    named = {_sha(m.raw) for m in tables.mails.values() if m.is_kept}
    for kept in tables.attachments.values():
        named.update(_sha(a.attachment.data) for a in kept)
    return named


def _person(person: Person, rewrite: Callable[[str], str]) -> Person:
    return Person(rewrite(person.name), rewrite(person.address))


def _rewritten(ticket: Ticket, rewrite: Callable[[str], str]) -> Ticket:
    return replace(
        ticket,
        subject=rewrite(ticket.subject),
        description=rewrite(ticket.description),
        requester=_person(ticket.requester, rewrite),
        beneficiary=_person(ticket.beneficiary, rewrite),
        application=rewrite(ticket.application),
        phone=rewrite(ticket.phone),
        owner=ticket.owner and rewrite(ticket.owner),
        rating_comment=ticket.rating_comment and rewrite(ticket.rating_comment),
    )


def _mail_rewritten(kept: KeptMail, rewrite: Callable[[str], str]) -> KeptMail:
    return replace(
        kept,
        sender=rewrite(kept.sender),
        subject=rewrite(kept.subject),
        message_id=rewrite(kept.message_id),
        reason=rewrite(kept.reason),
    )


def _place(origin: MailOrigin) -> Place:
    return (origin.source, origin.uidvalidity, origin.uid)


def _record(kept: KeptMail, *, is_new: bool) -> MailRecord:
    return MailRecord(kept.id, kept.state, kept.attempts, kept.reason, is_new)


def _set_queued(tables: _Tables, queued: Queued) -> None:
    """Keep a queued mail's new value, and whether it is still to send."""
    tables.put(tables.outbox, queued.id, queued)
    if queued.state is not OutboxState.PENDING:
        tables.drop(tables.pending, queued.id)


def _matches(ticket: Ticket, which: TicketFilter) -> bool:
    """Tell whether a ticket holds every condition of a filter."""
    owner = ticket.owner
    breach_at = ticket.timers.breach_at
    return (
        ticket.status in which.states
        and (
            which.party is None
            or which.party in (ticket.requester.address, ticket.beneficiary.address)
        )
        and (which.owner is None or owner == which.owner)
        and (which.owner_or_pool is None or owner in (which.owner_or_pool, None))
        and (not which.is_callback_missed or ticket.callback_met is False)
        and (
            which.breach_before is None
            or (breach_at is not None and breach_at <= which.breach_before)
        )
    )


def _urgency(ticket: Ticket) -> tuple[bool, float, int]:
    """The order of listings: call-back deadline (none last), then id."""
    due = ticket.callback_due_at
    if due is None:
        return (True, 0.0, ticket.id)
    return (False, due.timestamp(), ticket.id)


def _check_aware(ticket: Ticket) -> None:
    """Refuse a naive moment, as the database's column type does."""
    moments = (
        ticket.created_at,
        ticket.callback_due_at,
        ticket.first_call_at,
        ticket.resolved_at,
        ticket.closed_at,
        *(ticket.timers.due_at(timer) for timer in Timer),
    )
    if any(m is not None and m.tzinfo is None for m in moments):
        raise ValueError(f"naive datetime in ticket {ticket.number}")
