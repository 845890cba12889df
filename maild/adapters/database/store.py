"""The desk's store on SQLAlchemy (SQLite, PostgreSQL). I/O, no decisions.

`Store` is the application's DeskStore and `Store.transaction()` yields a
`Tx`, its DeskSession (maild/app/ports.py): everything one mail changes (its
record, the ticket, events, attachments and the outbox rows it causes) is
written in that one transaction. Rows become domain values here (tickets in
tickets.py); the outbox sender's queue statements are in outbox_rows.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maild.adapters.database import (
    erasure,
    mails,
    outbox_rows,
    retention,
    statements,
    tickets,
)
from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import (
    HEAD_REVISION,
    RELAXED_OPTION,
    WRITE_OPTION,
    is_sqlite,
    is_up_to_date,
    make_engine,
)
from maild.adapters.database.instances import Fence, check_fence, upgrade_when_safe
from maild.adapters.database.mails import KeptMail
from maild.adapters.database.models import (
    AttachmentRow,
    EventRow,
    MailRow,
    WatcherRow,
)
from maild.adapters.outgoing.outbox import Due
from maild.app.ports import OPEN_STATES, Named, NewEvent, TicketFilter
from maild.config import Settings
from maild.core.retention import BlobName, Dropped
from maild.domain import (
    FINAL_STATES,
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
from maild.errors import SchemaBehind, StoreUnavailable

log = logging.getLogger(__name__)

# What a database that is down, restarting or locked raises: try again later.
_UNAVAILABLE = (OperationalError, InterfaceError)


def _dialect(session: Session) -> str:
    """The key of this database's upserts (PostgreSQL's, or SQLite's)."""
    name = session.get_bind().dialect.name
    return "postgresql" if name == "postgresql" else "sqlite"


class Tx:
    """One open transaction: a DeskSession (maild/app/ports.py) on the database.

    Tickets come and go as domain values; `session` and `add` stay for the
    other parts of this adapter (staff, reports) and the tests.
    """

    def __init__(self, session: Session, blobs: BlobStore) -> None:
        self.session = session
        self.blobs = blobs
        self._staff: dict[str, Role] | None = None  # read once per transaction
        self._openings: dict[int, str | None] = {}

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    # Tickets

    def next_sequence(self, counter: str) -> int:
        """Take the next number of a counter; safe under concurrency."""
        stmt = statements.NEXT_VALUE[_dialect(self.session)]
        return int(self.session.execute(stmt, {"counter": counter}).scalar_one())

    def add_ticket(self, ticket: Ticket) -> Ticket:
        """Insert a ticket (its id ignored); return it with its id.

        A Core INSERT: the unit of work's flush of one object cost the opening
        of a ticket more than the statement did.
        """
        values = tickets.insert_values(ticket)
        new_id = self.session.execute(tickets.INSERT, values).scalar_one()
        return replace(ticket, id=int(new_id))

    def ticket_by_number(
        self, number: str, *, for_update: bool = False
    ) -> Ticket | None:
        """The ticket; locked until commit with for_update (two CLAIMs at once).

        FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises already.
        """
        stmt = tickets.BY_NUMBER_LOCKED if for_update else tickets.BY_NUMBER
        row = self.session.execute(stmt, {"number": number}).first()
        return tickets.ticket_of(row) if row is not None else None

    def ticket_by_id(
        self, ticket_id: int, *, for_update: bool = False
    ) -> Ticket | None:
        stmt = tickets.BY_ID_LOCKED if for_update else tickets.BY_ID
        row = self.session.execute(stmt, {"ticket_id": ticket_id}).first()
        return tickets.ticket_of(row) if row is not None else None

    def save_ticket(self, ticket: Ticket) -> None:
        """Write a changed ticket back (every field but id, number and token)."""
        done = self.session.execute(tickets.UPDATE, tickets.update_values(ticket))
        if cast(CursorResult[Any], done).rowcount != 1:
            raise LookupError(f"no ticket {ticket.id}")

    def tickets(self, which: TicketFilter, limit: int) -> tuple[Ticket, ...]:
        """The tickets a filter asks for, most urgent call-back first."""
        rows = self.session.execute(tickets.listing(which, limit))
        return tuple(tickets.ticket_of(row) for row in rows)

    def count_by_state(self) -> Mapping[TicketState, int]:
        """How many tickets are in each state that is not closed (0 included)."""
        counts: dict[TicketState, int] = {s: 0 for s in TicketState if s in OPEN_STATES}
        for status, count in self.session.execute(tickets.COUNT_BY_STATE):
            counts[TicketState(status)] = int(count)
        return counts

    def tickets_opened_since(self, requester: str, since: datetime) -> int:
        """How many tickets an address opened since a moment."""
        found = self.session.execute(
            tickets.OPENED_SINCE, {"requester": requester, "since": since}
        )
        return int(found.scalar_one())

    def watchers(self, ticket_id: int) -> tuple[Person, ...]:
        rows = self.session.execute(tickets.WATCHERS, {"ticket_id": ticket_id})
        return tuple(Person(name, address) for name, address in rows)

    def add_watchers(self, ticket_id: int, watchers: tuple[Person, ...]) -> None:
        if watchers:
            self.session.execute(
                tickets.ADD_WATCHER,
                [
                    {"ticket_id": ticket_id, "name": w.name, "address": w.address}
                    for w in watchers
                ],
            )

    def attachment_names(self, ticket_id: int) -> tuple[str, ...]:
        found = self.session.execute(tickets.ATTACHMENT_NAMES, {"ticket_id": ticket_id})
        return tuple(found.scalars())

    def add_event(self, ticket_id: int, event: NewEvent) -> int:
        """Add an event to a ticket's history; return its id."""
        event_id = self.session.execute(
            statements.ADD_EVENT,
            {
                "ticket_id": ticket_id,
                "kind": event.kind.value,
                "actor": event.actor,
                "at": event.at,
                "text": event.text,
                "message_id": event.message_id,
                "is_internal": event.is_internal,
                "mail_id": event.mail_id,
            },
        ).scalar_one()
        if event.kind is EventKind.CREATED:  # the opening mail: known now
            self._openings[ticket_id] = event.message_id
        return int(event_id)

    def add_attachments(
        self, ticket_id: int, event_id: int | None, attachments: Sequence[Attachment]
    ) -> None:
        if not attachments:
            return
        retention.hold_blob_lock(self.session)
        self.session.execute(
            statements.ADD_ATTACHMENT,
            [
                {
                    "ticket_id": ticket_id,
                    "event_id": event_id,
                    "filename": item.filename,
                    "content_type": item.content_type,
                    "size": len(item.data),
                    "sha256": self.blobs.put(item.data),
                    "is_inline": item.is_inline,
                    "content_id": item.content_id,
                }
                for item in attachments
            ],
        )

    def opening_message_id(self, ticket_id: int) -> str | None:
        """The Message-ID of the mail that opened a ticket (read once)."""
        if ticket_id not in self._openings:
            self._openings[ticket_id] = self.session.execute(
                statements.OPENING_MESSAGE_ID, {"ticket_id": ticket_id}
            ).scalar_one_or_none()
        return self._openings[ticket_id]

    # Retention and erasure (app/purge.py, app/person.py)

    def drop_ticket_mails(self, ticket_id: int, now: datetime) -> Dropped:
        """Drop a ticket's raw mails and attachments and mark it purged."""
        return retention.drop_ticket_bytes(self.session, ticket_id, now)

    def mail_fate(self, mail_id: int) -> tuple[MailState, datetime | None] | None:
        """A mail's state and handling time, its row locked (FOR UPDATE)."""
        row = self.session.get(MailRow, mail_id, with_for_update=True)
        return None if row is None else (MailState(row.state), row.handled_at)

    def drop_mail_bytes(self, mail_id: int) -> Dropped:
        """Drop the raw bytes of one mail (its record stays)."""
        shas = retention.drop_mail_bytes(self.session, mail_id)
        return Dropped(mails=len(shas), blobs=shas)

    def rewrite_ticket(self, ticket_id: int, rewrite: Callable[[str], str]) -> Dropped:
        """Rewrite every text of a ticket; drop its raw mails and attachments."""
        return erasure.rewrite_ticket(self.session, ticket_id, rewrite)

    def rewrite_mail(self, mail_id: int, rewrite: Callable[[str], str]) -> Dropped:
        """Rewrite a mail's record and drop its bytes."""
        return erasure.rewrite_mail(self.session, mail_id, rewrite)

    def rewrite_answers(self, address: str, alias: str) -> None:
        """Keep the answers counted for an address under its pseudonym."""
        erasure.rewrite_answers(self.session, address, alias)

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
        """Record what became of a mail; it is final once committed.

        Raises MailAlreadyFinished when another handling of the same mail (the
        same bytes delivered twice at once) committed first: the caller's
        transaction must then roll back, so the mail has one effect.
        """
        mails.finish(self.session, mail_id, state, reason, ticket_id, now, mail)

    # Outgoing mail

    def enqueue(
        self, mail: OutboundMail, data: bytes, ticket_id: int | None, now: datetime
    ) -> None:
        """Queue a rendered mail; the sender loop delivers it after commit."""
        self.session.execute(
            outbox_rows.ADD,
            {
                "message_id": mail.message_id,
                "ticket_id": ticket_id,
                "recipients": ",".join(mail.to),
                "subject": mail.subject,
                "audience": mail.audience.value,
                "data": data,
                "state": OutboxState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "created_at": now,
                "sent_at": None,
            },
        )

    def mark_bounced(self, message_ids: tuple[str, ...], error: str) -> str | None:
        """Mark the first queued mail among these as failed; return its id."""
        if not message_ids:
            return None
        found = dict(
            (message_id, row_id)
            for row_id, message_id in self.session.execute(
                outbox_rows.BY_MESSAGE_IDS, {"message_ids": list(message_ids)}
            )
        )
        for message_id in message_ids:
            if message_id in found:
                self.session.execute(
                    outbox_rows.MARK_BOUNCED,
                    {"outbox_id": found[message_id], "error": error},
                )
                return message_id
        return None

    def mark_failed(self, outbox_id: int, error: str) -> FailedDelivery | None:
        """Mark a queued mail failed for good (an attempt more); None if unknown."""
        row = self.session.execute(
            outbox_rows.MARK_FAILED,
            {"outbox_id": outbox_id, "error": error[: outbox_rows.ERROR_CHARS]},
        ).first()
        if row is None:
            return None
        return FailedDelivery(
            message_id=row.message_id,
            ticket_id=row.ticket_id,
            recipients=tuple(row.recipients.split(",")),
            subject=row.subject,
            audience=row.audience,
            error=error,
        )

    def answers_since(
        self,
        since: tuple[datetime, datetime],
        *,
        address: str = "",
        ticket_id: int = 0,
    ) -> tuple[int, int]:
        """Automatic answers sent (not held) to an address, or on a ticket, since
        each of two moments (the older first): one query for both."""
        oldest, newest = since
        stmt, key = (
            (statements.ANSWERS_ON, {"ticket_id": ticket_id})
            if ticket_id
            else (statements.ANSWERS_TO, {"address": address})
        )
        older, newer = self.session.execute(
            stmt, {"since_0": oldest, "since_1": newest, **key}
        ).one()
        return int(older), int(newer)

    def record_answer(
        self,
        address: str,
        at: datetime,
        *,
        is_held: bool,
        template: str,
        ticket_id: int | None,
    ) -> None:
        self.session.execute(
            statements.ADD_AUTO_ANSWER,
            {
                "address": address,
                "at": at,
                "is_held": is_held,
                "template": template,
                "ticket_id": ticket_id,
            },
        )

    def was_answered_since(self, address: str, template: str, since: datetime) -> bool:
        """Tell whether an answer of this template went (or was held) to an address."""
        found = self.session.execute(
            statements.WAS_ANSWERED,
            {"address": address, "template": template, "since": since},
        )
        return found.first() is not None

    # Staff and the daily digest

    def staff(self) -> Mapping[str, Role]:
        """Staff added with the command line, address -> role (read once)."""
        if self._staff is None:
            self._staff = staff_roles(self.session)
        return self._staff

    def claim_digest_day(self, day: int) -> bool:
        """Mark the digests of a day (yymmdd) as sent; False if they were."""
        claimed = self.session.execute(
            statements.CLAIM_DAY[_dialect(self.session)], {"day": day}
        )
        return claimed.first() is not None


class Store:
    """The desk's store on SQLite or PostgreSQL: a DeskStore (maild/app/ports.py)
    and the outbox sender's OutboxStore."""

    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._relaxed_sessions = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True, RELAXED_OPTION: True}),
            expire_on_commit=False,
        )
        # SQLite has one writer at a time, and a writer that finds the lock
        # taken sleeps in SQLite's busy handler in steps of up to 100 ms, long
        # after the lock is free. Writers of this process (intake, outbox, SLA
        # tick) queue on a lock of our own instead, woken the moment it frees;
        # other processes (the command line) still meet the busy handler.
        self._writer: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # The lease this thread's transactions write under (fenced()), if any.
        self._fence = threading.local()

    @contextmanager
    def transaction(self, *, relaxed: bool = False) -> Iterator[Tx]:
        """Open a write transaction; commit at the end, roll back on error.

        relaxed: losing this commit in a power cut would only repeat work (see
        RELAXED_OPTION); it then costs no disk flush of its own on SQLite.
        """
        sessions = self._relaxed_sessions if relaxed else self._write_sessions
        try:
            with self._writer, sessions() as session, session.begin():
                yield Tx(session, self.blobs)
                if not relaxed:  # what it commits names no blob a power cut loses
                    self.blobs.wait_durable()
                fence: Fence | None = getattr(self._fence, "value", None)
                if fence is not None:  # last, just before the commit
                    check_fence(session, fence)  # LeaseLost: nothing written
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(_first_line(exc)) from exc

    @contextmanager
    def fenced(self, fence: Fence) -> Iterator[None]:
        """Make this thread's transactions write under a lease, or not at all.

        Each one checks, in itself and just before it commits, that the
        lease is still this instance's (check_fence), and rolls back with
        LeaseLost if it is not: an instance paused past its lease and
        resumed cannot act on it. Checked last, the lease row is locked for
        the commit alone: a holder killed while it waits on another lock
        (its backend cannot tell it is gone) does not keep the role from
        the others.
        """
        self._fence.value = fence
        try:
            yield
        finally:
            self._fence.value = None

    def truncate_log(self) -> None:
        """Copy SQLite's write-ahead log into the database and empty it, so that
        the pages an erasure rewrote are nowhere in their old form (no-op on
        PostgreSQL, whose VACUUM reclaims dead rows)."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Finish flushing the blobs and close the database connections."""
        self.blobs.close()
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(_first_line(exc)) from exc

    # Mails taken in

    def register_mail(
        self, origin: MailOrigin, content_hash: str, raw: bytes, now: datetime
    ) -> MailRecord:
        """Record a mail and count one more attempt on it, in its own commit.

        Relaxed: a power cut that loses this commit loses an attempt count and
        nothing else; the mail has not left its inbox (nor been answered 250).
        The kept bytes are flushed while the mail is handled; the commit of its
        effect waits for that, and so does a mail handled before, which leaves
        the inbox without another commit. Its Message-ID and sender are
        written when it is finished, once parsed.
        """
        with self.transaction(relaxed=True) as tx:
            retention.hold_blob_lock(tx.session)  # the sweep waits (retention.py)
            blob = self.blobs.put(raw)
            record = mails.register(
                tx.session, origin, content_hash, len(raw), blob, now
            )
        if record.state in FINAL_STATES:
            self.blobs.wait_durable()
        return record

    def refund_attempt(self, mail_id: int) -> MailRecord:
        """Take back the attempt counted on a pending mail: it failed for a while.

        A temporary failure (database or server unavailable) says nothing about
        the mail, so it must not bring the mail closer to quarantine.
        """
        with self.transaction(relaxed=True) as tx:
            row = tx.session.get(MailRow, mail_id)
            if row is None:
                raise LookupError(mail_id)
            if row.state == MailState.PENDING.value and row.attempts > 0:
                row.attempts -= 1
            return mails.record_of(row, is_new=False)

    def reopen_quarantined(self, mail_id: int) -> KeptMail:
        """Make a quarantined mail pending again with no attempt, for a retry.

        Raises LookupError when there is no such quarantined mail or its bytes
        were not kept.
        """
        with self.transaction() as tx:
            row = tx.session.get(MailRow, mail_id)
            if row is None or row.state != MailState.QUARANTINED.value:
                raise LookupError(f"no quarantined mail {mail_id}")
            try:
                raw = self.blobs.get(row.blob_sha256)
            except (OSError, ValueError) as exc:
                raise LookupError(f"the bytes of mail {mail_id} are gone") from exc
            row.state, row.attempts, row.handled_at = MailState.PENDING.value, 0, None
            origin = MailOrigin(
                source=row.source, uidvalidity=row.uidvalidity, uid=row.uid
            )
            return KeptMail(row.id, raw, origin)

    # Retention (app/purge.py)

    def tickets_due_for_purge(
        self, closed_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        """Closed tickets not purged yet, closed before a moment, in the order of
        their closure, after a given one (0: from the first)."""
        with self.reading() as session:
            stmt = (
                retention.TICKETS_DUE_AFTER if after_id else retention.TICKETS_DUE_FIRST
            )
            found = session.execute(
                stmt, {"before": closed_before, "after": after_id, "limit": limit}
            )
            return list(found.scalars())

    def mails_due_for_purge(
        self, handled_before: datetime, after_id: int, limit: int
    ) -> list[int]:
        """Quarantined and ignored mails with bytes, handled before a moment."""
        with self.reading() as session:
            found = session.execute(
                retention.MAILS_DUE,
                {"before": handled_before, "after": after_id, "limit": limit},
            )
            return list(found.scalars())

    @contextmanager
    def rehearsal(self) -> Iterator[Tx]:
        """A write transaction that is always rolled back: a dry run."""
        try:
            with self._writer, self._write_sessions() as session:
                session.begin()
                try:
                    yield Tx(session, self.blobs)
                finally:
                    session.rollback()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(_first_line(exc)) from exc

    def blob_names(self, shas: Iterable[str]) -> list[BlobName]:
        """Every row that names one of these blobs (a read, in chunks)."""
        with self.reading() as session:
            return retention.blob_names(session, shas)

    def sweep_blobs(self, limit: int) -> tuple[int, int]:
        """Look at up to limit noted blobs, remove the files nothing names.

        One write transaction (retention.py says why); returns how many keys
        were looked at (fewer than limit: none left) and files removed.
        """
        with self.transaction() as tx:
            return retention.sweep_batch(tx.session, self.blobs, limit)

    # A person's data (app/anonymise.py)

    def naming(self, address: str) -> Named:
        """Where an address is; every kept mail's header block read once."""
        with self.reading() as session:
            in_headers = erasure.mails_naming(session, self.blobs, address)
            mails = [*erasure.mails_from(session, address), *in_headers]
            tickets = set(erasure.tickets_naming(session, address))
            tickets |= {t for _, t in in_headers if t is not None}
        return Named(
            tuple(sorted(tickets)),
            tuple(sorted({m for m, t in mails if t not in tickets})),
        )

    # What classification and the SLA tick look up

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        if not message_ids:
            return None
        with self.reading() as session:
            found = session.execute(
                tickets.FOR_MESSAGE_IDS, {"message_ids": list(message_ids[-50:])}
            )
            return found.scalar_one_or_none()

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        """Who is on a ticket: requester, beneficiary, owner, watchers; None
        when no ticket has this number."""
        with self.reading() as session:
            row = session.execute(tickets.PARTIES, {"number": number}).first()
            if row is None:
                return None
            watchers = session.execute(tickets.WATCHERS, {"ticket_id": row.id})
            return frozenset(
                a.lower()
                for a in (
                    row.requester_address,
                    row.beneficiary_address,
                    row.owner or "",
                    *(address for _, address in watchers),
                )
                if a
            )

    def staff(self) -> Mapping[str, Role]:
        with self.reading() as session:
            return staff_roles(session)

    def due_tickets(self, timer: Timer, now: datetime, limit: int) -> list[int]:
        """The ids of tickets whose timer is due at now, the earliest first."""
        with self.reading() as session:
            found = session.execute(tickets.due(timer), {"now": now, "limit": limit})
            return list(found.scalars())

    # The outbox sender's queue (maild/adapters/outgoing/outbox.py)

    def due_outbox(self, now: datetime, limit: int) -> list[Due]:
        """The pending mails due at now, in the order they were queued."""
        with self.reading() as session:
            rows = list(session.execute(outbox_rows.DUE, {"now": now, "limit": limit}))
        return _due(rows)

    def take_due(self, now: datetime, limit: int) -> list[Due]:
        """The mails due at now, taken for this sender for outbox_rows.CLAIM.

        On PostgreSQL several instances' senders never take the same row at
        once (outbox_rows.CLAIM_DUE); SQLite has one instance, one sender.
        """
        if self.engine.dialect.name != "postgresql":
            return self.due_outbox(now, limit)
        with self.transaction(relaxed=True) as tx:
            claimed = tx.session.execute(
                outbox_rows.CLAIM_DUE,
                {"now": now, "limit": limit, "until": now + outbox_rows.CLAIM},
            )
            return _due(sorted(tuple(row) for row in claimed))

    def mark_sent(self, outbox_ids: Sequence[int], now: datetime) -> None:
        """Mark pending mails sent (and count the attempt), in one commit.

        Relaxed: a mark lost in a power cut sends the mail again, with the same
        Message-ID, which is the at-least-once promise anyway.
        """
        if not outbox_ids:
            return
        with self.transaction(relaxed=True) as tx:
            tx.session.execute(
                outbox_rows.MARK_SENT, {"ids": list(outbox_ids), "now": now}
            )

    def defer(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt on a queued mail and when to try again.

        Relaxed: a deferral lost in a power cut is only retried sooner.
        """
        with self.transaction(relaxed=True) as tx:
            tx.session.execute(
                outbox_rows.DEFER,
                {
                    "outbox_id": outbox_id,
                    "error": error[: outbox_rows.ERROR_CHARS],
                    "next_attempt_at": next_attempt_at,
                },
            )

    def outbox_counts(self) -> Mapping[OutboxState, int]:
        """How many queued mails are in each state (states with none left out)."""
        with self.reading() as session:
            return {
                OutboxState(state): int(count)
                for state, count in session.execute(outbox_rows.COUNTS)
            }


def _due(rows: Sequence[Any]) -> list[Due]:
    return [
        Due(row_id, message_id, tuple(recipients.split(",")), data, tries, number)
        for row_id, message_id, recipients, data, tries, number in rows
    ]


def _first_line(exc: OperationalError | InterfaceError) -> str:
    """The driver's message without the SQL it may quote on further lines."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def watchers_of(session: Session, ticket_id: int) -> list[WatcherRow]:
    return list(
        session.execute(
            select(WatcherRow)
            .where(WatcherRow.ticket_id == ticket_id)
            .order_by(WatcherRow.id)
        ).scalars()
    )


def attachments_of(session: Session, ticket_id: int) -> list[AttachmentRow]:
    return list(
        session.execute(
            select(AttachmentRow)
            .where(AttachmentRow.ticket_id == ticket_id)
            .order_by(AttachmentRow.id)
        ).scalars()
    )


def events_of(session: Session, ticket_id: int) -> list[EventRow]:
    return list(
        session.execute(
            select(EventRow)
            .where(EventRow.ticket_id == ticket_id)
            .order_by(EventRow.id)
        ).scalars()
    )


def staff_roles(session: Session) -> dict[str, Role]:
    """Technicians and supervisors added with the CLI, by address."""
    return {
        address: Role(role) for address, role in session.execute(statements.STAFF_ROLES)
    }


def open_store(
    settings: Settings, *, migrate: bool, checkpoints: bool = True, fenced: bool = False
) -> Store:
    """Connect to the database (migrating SQLite when asked) and the blobs.

    checkpoints=False: see make_engine; the daemon's Checkpointer does them.
    fenced=True (the daemon, whose roles hold leases): a PostgreSQL session
    left idle in a transaction for the lease time is ended (make_engine).
    """
    engine = make_engine(
        settings.database_url,
        checkpoints=checkpoints,
        idle_in_transaction=settings.lease_seconds if fenced else None,
    )
    if migrate and is_sqlite(settings.database_url) and not is_up_to_date(engine):
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
        upgrade_when_safe(settings.database_url, settings.lease_seconds)
    elif migrate and not _is_at_head_or_unreachable(engine):
        engine.dispose()
        raise SchemaBehind(
            f"the database's schema is not at {HEAD_REVISION}, the one this maild "
            "needs: run `maild db upgrade` (README, Several instances)"
        )
    return Store(engine, BlobStore(settings.storage_dir / "blobs"))


def _is_at_head_or_unreachable(engine: Engine) -> bool:
    """Whether a shared database is at head; True when it cannot be reached
    now (the daemon waits for it, as for any outage)."""
    try:
        return is_up_to_date(engine)
    except _UNAVAILABLE:
        return True
