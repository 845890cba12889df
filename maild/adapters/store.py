"""The ticket store: transactions over the SQLAlchemy models. I/O, no decisions.

`Store.transaction()` yields a `Tx`: everything one mail changes (its record,
the ticket, events, attachments and the outbox rows it causes) is written in
that one transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maild.adapters.blobs import BlobStore
from maild.adapters.database import (
    RELAXED_OPTION,
    WRITE_OPTION,
    is_sqlite,
    is_up_to_date,
    make_engine,
    upgrade,
)
from maild.adapters.models import (
    AttachmentRow,
    AutoAnswerRow,
    CounterRow,
    EventRow,
    MailRow,
    OutboxRow,
    StaffRow,
    TicketRow,
    WatcherRow,
)
from maild.config import Settings
from maild.domain import Attachment, EventKind, InboundMail, MailOrigin, OutboundMail
from maild.errors import MaildError, StoreUnavailable

log = logging.getLogger(__name__)

# What a database that is down, restarting or locked raises: try again later.
_UNAVAILABLE = (OperationalError, InterfaceError)
_MAILS = cast(Table, MailRow.__table__)


class MailState(StrEnum):
    PENDING = "pending"  # taken in, not handled yet (or handling crashed)
    DONE = "done"  # a ticket or an event on one
    IGNORED = "ignored"  # auto-reply, bounce, list: recorded, not answered
    QUARANTINED = "quarantined"


FINAL_STATES = (MailState.DONE, MailState.IGNORED, MailState.QUARANTINED)


class MailAlreadyFinished(MaildError):
    """Another handling of this mail committed its effect first; roll back."""

    def __init__(self, mail_id: int, state: MailState) -> None:
        super().__init__(f"mail {mail_id} is already {state}")
        self.mail_id = mail_id
        self.state = state


@dataclass(frozen=True, slots=True)
class MailRecord:
    id: int
    state: MailState
    attempts: int
    reason: str
    is_new: bool  # first time this mail is seen


@dataclass(frozen=True, slots=True)
class KeptMail:
    """A quarantined mail taken out again for a new attempt: its bytes and place."""

    id: int
    raw: bytes
    origin: MailOrigin


class Tx:
    """One open transaction; the methods the service writes through."""

    def __init__(self, session: Session, blobs: BlobStore) -> None:
        self.session = session
        self.blobs = blobs
        self._staff: dict[str, str] | None = None  # read once per transaction
        self._openings: dict[int, str | None] = {}

    def next_sequence(self, counter: str) -> int:
        """Take the next number of a counter; safe under concurrency."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(CounterRow)
            .values(name=counter, value=1)
            .on_conflict_do_update(
                index_elements=[CounterRow.name], set_={"value": CounterRow.value + 1}
            )
            .returning(CounterRow.value)
        )
        return int(self.session.execute(stmt).scalar_one())

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    def add_event(self, event: EventRow) -> EventRow:
        self.add(event)
        if event.kind == EventKind.CREATED.value:  # the opening mail: known now
            self._openings[event.ticket_id] = event.message_id
        return event

    def add_unflushed(self, row: object) -> None:
        """Add a row whose id nothing needs now: written with the next flush."""
        self.session.add(row)

    def add_attachments(
        self, ticket_id: int, event_id: int | None, attachments: Sequence[Attachment]
    ) -> None:
        for item in attachments:
            self.session.add(
                AttachmentRow(
                    ticket_id=ticket_id,
                    event_id=event_id,
                    filename=item.filename,
                    content_type=item.content_type,
                    size=len(item.data),
                    sha256=self.blobs.put(item.data),
                    is_inline=item.is_inline,
                    content_id=item.content_id,
                )
            )
        self.session.flush()

    def enqueue(
        self, mail: OutboundMail, data: bytes, ticket_id: int | None, now: datetime
    ) -> None:
        """Queue a rendered mail; the sender loop delivers it after commit."""
        self.session.add(
            OutboxRow(
                message_id=mail.message_id,
                ticket_id=ticket_id,
                recipients=",".join(mail.to),
                subject=mail.subject,
                audience=mail.audience.value,
                data=data,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                last_error="",
                created_at=now,
            )
        )

    def answers_since(
        self, since: Sequence[datetime], *, address: str = "", ticket_id: int = 0
    ) -> tuple[int, ...]:
        """Automatic answers sent (not held) to an address, or on a ticket, since
        each moment of since (the oldest first): one query for all of them."""
        where = (
            AutoAnswerRow.ticket_id == ticket_id
            if ticket_id
            else AutoAnswerRow.address == address
        )
        stmt = select(
            *(func.count().filter(AutoAnswerRow.at >= moment) for moment in since)
        ).where(where, AutoAnswerRow.at >= since[0], AutoAnswerRow.is_held.is_(False))
        return tuple(int(n) for n in self.session.execute(stmt).one())

    def record_answer(
        self,
        address: str,
        at: datetime,
        *,
        is_held: bool,
        template: str,
        ticket_id: int | None,
    ) -> None:
        self.session.add(
            AutoAnswerRow(
                address=address,
                at=at,
                is_held=is_held,
                template=template,
                ticket_id=ticket_id,
            )
        )

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
        # One UPDATE that only a pending row matches: it locks the row
        # (PostgreSQL; SQLite's write lock is held already), so of two
        # handlings of one mail the second finds it finished.
        values: dict[str, object] = {
            "state": state.value,
            "reason": reason,
            "ticket_id": ticket_id,
            "handled_at": now,
        }
        if mail is not None:
            values["message_id"] = mail.message_id[:998]
            values["sender"] = mail.sender.address[:320]
        done = self.session.execute(
            update(_MAILS)
            .where(_MAILS.c.id == mail_id, _MAILS.c.state == MailState.PENDING.value)
            .values(**values)
        )
        if cast(CursorResult[Any], done).rowcount == 1:
            return
        found = self.session.execute(
            select(_MAILS.c.state).where(_MAILS.c.id == mail_id)
        ).scalar_one_or_none()
        if found is None:
            raise LookupError(mail_id)
        raise MailAlreadyFinished(mail_id, MailState(found))

    def opening_message_id(self, ticket_id: int) -> str | None:
        """The Message-ID of the mail that opened a ticket (read once)."""
        if ticket_id not in self._openings:
            self._openings[ticket_id] = self.session.execute(
                select(EventRow.message_id)
                .where(
                    EventRow.ticket_id == ticket_id,
                    EventRow.kind == EventKind.CREATED.value,
                )
                .limit(1)
            ).scalar_one_or_none()
        return self._openings[ticket_id]

    def staff(self) -> dict[str, str]:
        """Staff added with the command line, address -> role (read once)."""
        if self._staff is None:
            self._staff = staff_roles(self.session)
        return self._staff

    def ticket_by_number(
        self, number: str, *, for_update: bool = False
    ) -> TicketRow | None:
        """The ticket; locked until commit with for_update (two CLAIMs at once)."""
        stmt = select(TicketRow).where(TicketRow.number == number)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()


class Store:
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
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(_first_line(exc)) from exc

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

    def register_mail(
        self,
        origin: MailOrigin,
        content_hash: str,
        message_id: str,
        sender: str,
        raw: bytes,
        now: datetime,
    ) -> MailRecord:
        """Record a mail and count one more attempt on it, in its own commit.

        Relaxed: a power cut that loses this commit loses an attempt count and
        nothing else; the mail has not left its inbox (nor been answered 250).
        The kept bytes are flushed while the mail is handled; the commit of its
        effect waits for that, and so does a mail handled before, which leaves
        the inbox without another commit.
        """
        blob = self.blobs.put(raw)
        with self.transaction(relaxed=True) as tx:
            row = _find_mail(tx.session, origin, content_hash)
            if row is None:
                row = MailRow(
                    source=origin.source,
                    uidvalidity=origin.uidvalidity,
                    uid=origin.uid,
                    content_hash=content_hash,
                    message_id=message_id[:998],
                    sender=sender[:320],
                    size=len(raw),
                    attempts=0,
                    state=MailState.PENDING.value,
                    reason="",
                    received_at=now,
                    blob_sha256=blob,
                )
                tx.add(row)
                is_new = True
            else:
                is_new = False
            if row.state == MailState.PENDING.value:
                row.attempts += 1
            record = _record(row, is_new=is_new)
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
            return _record(row, is_new=False)

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

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        if not message_ids:
            return None
        with self.reading() as session:
            stmt = (
                select(TicketRow.number)
                .join(OutboxRow, OutboxRow.ticket_id == TicketRow.id)
                .where(OutboxRow.message_id.in_(message_ids[-50:]))
                .limit(1)
            )
            return session.execute(stmt).scalar_one_or_none()

    def ticket_exists(self, number: str) -> bool:
        with self.reading() as session:
            stmt = select(TicketRow.id).where(TicketRow.number == number)
            return session.execute(stmt).first() is not None

    def staff(self) -> dict[str, str]:
        with self.reading() as session:
            return staff_roles(session)


def _first_line(exc: OperationalError | InterfaceError) -> str:
    """The driver's message without the SQL it may quote on further lines."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _record(row: MailRow, *, is_new: bool) -> MailRecord:
    return MailRecord(row.id, MailState(row.state), row.attempts, row.reason, is_new)


def _find_mail(
    session: Session, origin: MailOrigin, content_hash: str
) -> MailRow | None:
    """The record of this mail: by its place in the mailbox, else by its bytes.

    One query for both: the rows at this (source, UIDVALIDITY, UID) or with
    these bytes, the oldest first.
    """
    by_bytes = MailRow.content_hash == content_hash
    where = by_bytes
    if origin.uid is not None:
        where = or_(
            and_(
                MailRow.source == origin.source,
                MailRow.uidvalidity == origin.uidvalidity,
                MailRow.uid == origin.uid,
            ),
            by_bytes,
        )
    rows = list(
        session.execute(select(MailRow).where(where).order_by(MailRow.id)).scalars()
    )
    for row in rows:
        if origin.uid is not None and (row.source, row.uidvalidity, row.uid) == (
            origin.source,
            origin.uidvalidity,
            origin.uid,
        ):
            return row
    # The same bytes again (an MTA retry after a lost 250, a copy under a new
    # UID, the mailbox renumbered): the first record stands for it.
    first = next((r for r in rows if r.content_hash == content_hash), None)
    if (
        first is not None
        and origin.uid is not None
        and first.source == origin.source
        and first.uidvalidity != origin.uidvalidity
    ):
        log.warning(
            "mail %s seen again under UIDVALIDITY %s (was %s/%s): known by its hash",
            first.id,
            origin.uidvalidity,
            first.uidvalidity,
            first.uid,
        )
    return first


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


def staff_roles(session: Session) -> dict[str, str]:
    """Technicians and supervisors added with the CLI, by address."""
    return {r.address: r.role for r in session.execute(select(StaffRow)).scalars()}


def open_store(settings: Settings, *, migrate: bool) -> Store:
    """Connect to the database (migrating SQLite when asked) and the blobs."""
    engine = make_engine(settings.database_url)
    if migrate and is_sqlite(settings.database_url) and not is_up_to_date(engine):
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
    return Store(engine, BlobStore(settings.storage_dir / "blobs"))
