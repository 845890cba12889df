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
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Engine,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import (
    RELAXED_OPTION,
    WRITE_OPTION,
    is_sqlite,
    is_up_to_date,
    make_engine,
    upgrade,
)
from maild.adapters.database.models import (
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
from maild.domain import (
    FINAL_STATES,
    Attachment,
    EventKind,
    InboundMail,
    MailOrigin,
    MailRecord,
    MailState,
    OutboundMail,
)
from maild.errors import MailAlreadyFinished, StoreUnavailable

log = logging.getLogger(__name__)

# What a database that is down, restarting or locked raises: try again later.
_UNAVAILABLE = (OperationalError, InterfaceError)
_MAILS = cast(Table, MailRow.__table__)


@dataclass(frozen=True, slots=True)
class KeptMail:
    """A quarantined mail taken out again for a new attempt: its bytes and place."""

    id: int
    raw: bytes
    origin: MailOrigin


# The statements run for every mail, built once: SQLAlchemy then skips
# building them and working out their cache key each time (about a tenth of
# the CPU a mail cost). Their rows need no ORM object either.
_MAIL_RECORD = select(
    _MAILS.c.id,
    _MAILS.c.source,
    _MAILS.c.uidvalidity,
    _MAILS.c.uid,
    _MAILS.c.content_hash,
    _MAILS.c.state,
    _MAILS.c.attempts,
    _MAILS.c.reason,
).order_by(_MAILS.c.id)
_MAILS_BY_HASH = _MAIL_RECORD.where(_MAILS.c.content_hash == bindparam("content_hash"))
_MAILS_AT_OR_BY_HASH = _MAIL_RECORD.where(
    or_(
        and_(
            _MAILS.c.source == bindparam("source"),
            _MAILS.c.uidvalidity == bindparam("uidvalidity"),
            _MAILS.c.uid == bindparam("uid"),
        ),
        _MAILS.c.content_hash == bindparam("content_hash"),
    )
)
_ADD_MAIL = insert(_MAILS).returning(_MAILS.c.id)
_COUNT_ATTEMPT = (
    update(_MAILS)
    .where(_MAILS.c.id == bindparam("mail_id"))
    .values(attempts=_MAILS.c.attempts + 1)
    .returning(_MAILS.c.attempts)
)
_MAIL_STATE = select(_MAILS.c.state).where(_MAILS.c.id == bindparam("mail_id"))
_OUTBOX = cast(Table, OutboxRow.__table__)
_ADD_OUTBOX = insert(_OUTBOX)
_AUTO_ANSWERS = cast(Table, AutoAnswerRow.__table__)
_ADD_AUTO_ANSWER = insert(_AUTO_ANSWERS)
_ANSWERED_SINCE = select(
    func.count().filter(_AUTO_ANSWERS.c.at >= bindparam("since_0")),
    func.count().filter(_AUTO_ANSWERS.c.at >= bindparam("since_1")),
).where(_AUTO_ANSWERS.c.at >= bindparam("since_0"), _AUTO_ANSWERS.c.is_held.is_(False))
_ANSWERS_TO = _ANSWERED_SINCE.where(_AUTO_ANSWERS.c.address == bindparam("address"))
_ANSWERS_ON = _ANSWERED_SINCE.where(_AUTO_ANSWERS.c.ticket_id == bindparam("ticket_id"))
_EVENTS = cast(Table, EventRow.__table__)
_ADD_EVENT = insert(_EVENTS).returning(_EVENTS.c.id)
_OPENING_MESSAGE_ID = (
    select(_EVENTS.c.message_id)
    .where(
        _EVENTS.c.ticket_id == bindparam("ticket_id"),
        _EVENTS.c.kind == EventKind.CREATED.value,
    )
    .limit(1)
)
_ATTACHMENTS = cast(Table, AttachmentRow.__table__)
_ADD_ATTACHMENT = insert(_ATTACHMENTS)
_TICKETS = cast(Table, TicketRow.__table__)
_TICKET_COLUMNS = tuple(c.key for c in _TICKETS.columns if c.key != "id")
_ADD_TICKET = insert(_TICKETS).returning(_TICKETS.c.id)
_ADD_WATCHER = insert(cast(Table, WatcherRow.__table__))
_STAFF = cast(Table, StaffRow.__table__)
_STAFF_ROLES = select(_STAFF.c.address, _STAFF.c.role)
_PENDING_MAIL = and_(
    _MAILS.c.id == bindparam("mail_id"), _MAILS.c.state == MailState.PENDING.value
)
_FINISHED: dict[str, Any] = {
    "state": bindparam("to_state"),
    "reason": bindparam("to_reason"),
    "ticket_id": bindparam("to_ticket_id"),
    "handled_at": bindparam("to_handled_at"),
}
_FINISH_MAIL = update(_MAILS).where(_PENDING_MAIL).values(**_FINISHED)
_FINISH_PARSED_MAIL = (
    update(_MAILS)
    .where(_PENDING_MAIL)
    .values(
        **_FINISHED,
        message_id=bindparam("to_message_id"),
        sender=bindparam("to_sender"),
    )
)
_COUNTERS = cast(Table, CounterRow.__table__)
_NEXT_VALUE = {
    name: dialect.insert(_COUNTERS)
    .values(name=bindparam("counter"), value=1)
    .on_conflict_do_update(
        index_elements=[_COUNTERS.c.name], set_={"value": _COUNTERS.c.value + 1}
    )
    .returning(_COUNTERS.c.value)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _next_value(dialect: str) -> Any:
    """The counter's upsert for this database (PostgreSQL's, or SQLite's)."""
    return _NEXT_VALUE["postgresql" if dialect == "postgresql" else "sqlite"]


class Tx:
    """One open transaction; the methods the service writes through."""

    def __init__(self, session: Session, blobs: BlobStore) -> None:
        self.session = session
        self.blobs = blobs
        self._staff: dict[str, str] | None = None  # read once per transaction
        self._openings: dict[int, str | None] = {}

    def next_sequence(self, counter: str) -> int:
        """Take the next number of a counter; safe under concurrency."""
        stmt = _next_value(self.session.get_bind().dialect.name)
        return int(self.session.execute(stmt, {"counter": counter}).scalar_one())

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    def add_ticket(self, row: TicketRow) -> None:
        """Insert a new ticket and set its id; the row stays out of the session.

        The unit of work's flush of one object cost the opening of a ticket
        more than the statement did: nothing changes the new row afterwards
        in the transaction that creates it.
        """
        values = {key: getattr(row, key) for key in _TICKET_COLUMNS}
        row.id = int(self.session.execute(_ADD_TICKET, values).scalar_one())

    def add_watchers(self, ticket_id: int, watchers: Sequence[tuple[str, str]]) -> None:
        """Add (name, address) watchers to a ticket."""
        if watchers:
            self.session.execute(
                _ADD_WATCHER,
                [
                    {"ticket_id": ticket_id, "name": name, "address": address}
                    for name, address in watchers
                ],
            )

    def add_event(
        self,
        ticket_id: int,
        kind: EventKind,
        actor: str,
        at: datetime,
        text: str,
        message_id: str | None,
        *,
        is_internal: bool,
        mail_id: int | None = None,
    ) -> int:
        """Record an event on a ticket; return its id."""
        event_id = self.session.execute(
            _ADD_EVENT,
            {
                "ticket_id": ticket_id,
                "kind": kind.value,
                "actor": actor,
                "at": at,
                "text": text,
                "message_id": message_id,
                "is_internal": is_internal,
                "mail_id": mail_id,
            },
        ).scalar_one()
        if kind is EventKind.CREATED:  # the opening mail: known now
            self._openings[ticket_id] = message_id
        return int(event_id)

    def add_attachments(
        self, ticket_id: int, event_id: int | None, attachments: Sequence[Attachment]
    ) -> None:
        if not attachments:
            return
        self.session.execute(
            _ADD_ATTACHMENT,
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

    def enqueue(
        self, mail: OutboundMail, data: bytes, ticket_id: int | None, now: datetime
    ) -> None:
        """Queue a rendered mail; the sender loop delivers it after commit."""
        self.session.execute(
            _ADD_OUTBOX,
            {
                "message_id": mail.message_id,
                "ticket_id": ticket_id,
                "recipients": ",".join(mail.to),
                "subject": mail.subject,
                "audience": mail.audience.value,
                "data": data,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "created_at": now,
                "sent_at": None,
            },
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
            (_ANSWERS_ON, {"ticket_id": ticket_id})
            if ticket_id
            else (_ANSWERS_TO, {"address": address})
        )
        older, newer = self.session.execute(
            stmt, {"since_0": oldest, "since_1": newest, **key}
        ).one()
        return int(older), int(newer)

    def tickets_opened_since(self, requester: str, since: datetime) -> int:
        """How many tickets an address opened since a moment."""
        stmt = select(func.count(TicketRow.id)).where(
            TicketRow.requester_address == requester, TicketRow.created_at >= since
        )
        return int(self.session.execute(stmt).scalar_one())

    def was_answered_since(self, address: str, template: str, since: datetime) -> bool:
        """Tell whether an answer of this template went (or was held) to an address."""
        stmt = (
            select(AutoAnswerRow.id)
            .where(
                AutoAnswerRow.address == address,
                AutoAnswerRow.at >= since,
                AutoAnswerRow.template == template,
            )
            .limit(1)
        )
        return self.session.execute(stmt).first() is not None

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
            _ADD_AUTO_ANSWER,
            {
                "address": address,
                "at": at,
                "is_held": is_held,
                "template": template,
                "ticket_id": ticket_id,
            },
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
            "mail_id": mail_id,
            "to_state": state.value,
            "to_reason": reason,
            "to_ticket_id": ticket_id,
            "to_handled_at": now,
        }
        stmt = _FINISH_MAIL
        if mail is not None:
            stmt = _FINISH_PARSED_MAIL
            values["to_message_id"] = mail.message_id[:998]
            values["to_sender"] = mail.sender.address[:320]
        done = self.session.execute(stmt, values)
        if cast(CursorResult[Any], done).rowcount == 1:
            return
        found = self.session.execute(
            _MAIL_STATE, {"mail_id": mail_id}
        ).scalar_one_or_none()
        if found is None:
            raise LookupError(mail_id)
        raise MailAlreadyFinished(mail_id, MailState(found))

    def opening_message_id(self, ticket_id: int) -> str | None:
        """The Message-ID of the mail that opened a ticket (read once)."""
        if ticket_id not in self._openings:
            self._openings[ticket_id] = self.session.execute(
                _OPENING_MESSAGE_ID, {"ticket_id": ticket_id}
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
                new_id = tx.session.execute(
                    _ADD_MAIL,
                    {
                        "source": origin.source,
                        "uidvalidity": origin.uidvalidity,
                        "uid": origin.uid,
                        "content_hash": content_hash,
                        "message_id": message_id[:998],
                        "sender": sender[:320],
                        "size": len(raw),
                        "attempts": 1,
                        "state": MailState.PENDING.value,
                        "reason": "",
                        "ticket_id": None,
                        "received_at": now,
                        "handled_at": None,
                        "blob_sha256": blob,
                    },
                ).scalar_one()
                record = MailRecord(int(new_id), MailState.PENDING, 1, "", True)
            elif row.state == MailState.PENDING.value:
                attempts = tx.session.execute(
                    _COUNT_ATTEMPT, {"mail_id": row.id}
                ).scalar_one()
                record = MailRecord(
                    row.id, MailState.PENDING, attempts, row.reason, False
                )
            else:
                record = _record(row, is_new=False)
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

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        """Who is on a ticket: requester, beneficiary, owner, watchers; None
        when no ticket has this number."""
        with self.reading() as session:
            row = session.execute(
                select(
                    TicketRow.id,
                    TicketRow.requester_address,
                    TicketRow.beneficiary_address,
                    TicketRow.owner,
                ).where(TicketRow.number == number)
            ).first()
            if row is None:
                return None
            watchers = watchers_of(session, row.id)
            return frozenset(
                a.lower()
                for a in (
                    row.requester_address,
                    row.beneficiary_address,
                    row.owner or "",
                    *(w.address for w in watchers),
                )
                if a
            )

    def staff(self) -> dict[str, str]:
        with self.reading() as session:
            return staff_roles(session)


def _first_line(exc: OperationalError | InterfaceError) -> str:
    """The driver's message without the SQL it may quote on further lines."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _record(row: MailRow, *, is_new: bool) -> MailRecord:
    return MailRecord(row.id, MailState(row.state), row.attempts, row.reason, is_new)


def _find_mail(session: Session, origin: MailOrigin, content_hash: str) -> Any:
    """The record of this mail: by its place in the mailbox, else by its bytes.

    One query for both: the rows at this (source, UIDVALIDITY, UID) or with
    these bytes, the oldest first. Returns the row of _MAIL_RECORD, or None.
    """
    if origin.uid is not None and origin.uidvalidity is not None:
        where = {
            "source": origin.source,
            "uidvalidity": origin.uidvalidity,
            "uid": origin.uid,
            "content_hash": content_hash,
        }
        rows = list(session.execute(_MAILS_AT_OR_BY_HASH, where))
    else:  # the SMTP intake, a replay: known by the bytes alone
        rows = list(session.execute(_MAILS_BY_HASH, {"content_hash": content_hash}))
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
    return {address: role for address, role in session.execute(_STAFF_ROLES)}


def open_store(settings: Settings, *, migrate: bool, checkpoints: bool = True) -> Store:
    """Connect to the database (migrating SQLite when asked) and the blobs.

    checkpoints=False: see make_engine; the daemon's Checkpointer does them.
    """
    engine = make_engine(settings.database_url, checkpoints=checkpoints)
    if migrate and is_sqlite(settings.database_url) and not is_up_to_date(engine):
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
    return Store(engine, BlobStore(settings.storage_dir / "blobs"))
