"""Database tables (SQLAlchemy 2 declarative). Schema only; no queries, no I/O.

Alembic migrations in maild/migrations are generated from these models and
`alembic check` in the tests keeps them in agreement.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no offset: we wrote UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Timestamp = UtcDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_purge_due", "purged_at", "closed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # in our Message-IDs
    ticket_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    requester_name: Mapped[str] = mapped_column(String(255))
    requester_address: Mapped[str] = mapped_column(String(320), index=True)
    beneficiary_name: Mapped[str] = mapped_column(String(255))
    beneficiary_address: Mapped[str] = mapped_column(String(320), index=True)
    application: Mapped[str] = mapped_column(String(255))
    urgency: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    callback_due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    first_call_at: Mapped[datetime | None] = mapped_column(Timestamp)
    callback_met: Mapped[bool | None] = mapped_column(Boolean)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    close_reason: Mapped[str | None] = mapped_column(String(16))
    rating_score: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    source_mail_id: Mapped[int | None] = mapped_column(ForeignKey("mails.id"))
    unverified_sender: Mapped[str] = mapped_column(Text, server_default="", default="")
    # SLA timers (core/timers.py): the next moment each is due, or NULL.
    reminder_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    breach_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    reannounce_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    pdr_retry_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    auto_close_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    # Retention (app/purge.py): when its raw mails and attachments were removed.
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WatcherRow(Base):
    __tablename__ = "watchers"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(320))


class StaffRow(Base):
    """Technicians and supervisors added with the CLI (the config lists more)."""

    __tablename__ = "staff"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(Timestamp)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(Timestamp)
    text: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998))
    is_internal: Mapped[bool] = mapped_column(Boolean)
    mail_id: Mapped[int | None] = mapped_column(ForeignKey("mails.id"))


class AttachmentRow(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    filename: Mapped[str] = mapped_column(Text)  # metadata only, never a path
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # blob store key
    is_inline: Mapped[bool] = mapped_column(Boolean)
    content_id: Mapped[str] = mapped_column(String(998))


class MailRow(Base):
    """Every mail taken in, and what became of it."""

    __tablename__ = "mails"
    __table_args__ = (
        UniqueConstraint("source", "uidvalidity", "uid", name="uq_mails_place"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(512))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    # Unique: two instances taking in the same bytes at once get one record.
    content_hash: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    message_id: Mapped[str] = mapped_column(String(998))
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, server_default="")  # for `mails list`
    size: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)  # MailState
    reason: Mapped[str] = mapped_column(Text)
    # No foreign key: tickets.source_mail_id points the other way. Indexed
    # for the purge and the erasure, which take a ticket's mails.
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    handled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The raw bytes, kept; "" once removed (retention, erasure).
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)


class BlobSweepRow(Base):
    """A blob a purge or an erasure stopped naming: its file goes once unnamed.

    Written in the transaction that drops the last row naming it, removed once
    the file is checked and gone, so a crash in between leaves it to the next
    run instead of an orphan file.
    """

    __tablename__ = "blob_sweep"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)


class CounterRow(Base):
    """Ticket number sequences: one row per type letter and day."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    subject: Mapped[str] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)  # the whole message
    state: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp)
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AutoAnswerRow(Base):
    """Automatic answers to people outside the staff, for the per-address caps."""

    __tablename__ = "auto_answers"
    __table_args__ = (
        Index("ix_auto_answers_address_at", "address", "at"),
        Index("ix_auto_answers_ticket_at", "ticket_id", "at"),  # the answer ladder
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(Timestamp)
    is_held: Mapped[bool] = mapped_column(Boolean)  # held back by the cap
    template: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))


class InstanceRow(Base):
    """A `maild run` that is (or was lately) running: its heartbeat."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    seen_at: Mapped[datetime] = mapped_column(Timestamp)  # the database's clock
    schema_revision: Mapped[str] = mapped_column(String(32))  # the one it knows
    roles: Mapped[str] = mapped_column(Text)  # what it runs unleased: sender,...


class LeaseRow(Base):
    """A role only one instance may run at a time, and who holds it until when."""

    __tablename__ = "leases"

    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))  # an instance id
    epoch: Mapped[int] = mapped_column(BigInteger)  # raised at each new holder
    taken_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)  # the database's clock
