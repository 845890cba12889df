"""Erasure on the database: every text of a ticket rewritten, a person's
mails and answers rewritten, the bytes that name them dropped. I/O.

Runs in the caller's transaction (one ticket a transaction: no ticket is
ever half-erased). Rows are rewritten through the ORM: an erasure is rare,
and reading each row whole is what makes sure no column is forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from maild.adapters.database import retention
from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.models import (
    AutoAnswerRow,
    EventRow,
    MailRow,
    OutboxRow,
    TicketRow,
    WatcherRow,
)
from maild.core.erasure import headers_name
from maild.core.retention import Dropped

Rewrite = Callable[[str], str]

_TICKET_TEXTS = (
    "subject", "description", "requester_name", "requester_address",
    "beneficiary_name", "beneficiary_address", "application", "phone",
)  # fmt: skip
_EVENT_TEXTS = ("actor", "text", "message_id")
_MAIL_TEXTS = ("sender", "subject", "message_id", "reason")
_HEAD_BYTES = 256 * 1024  # a header block longer than this is refused at intake
_FIRST_READ = 16 * 1024


def _rewrite_row(row: object, columns: tuple[str, ...], rewrite: Rewrite) -> None:
    for column in columns:
        value = getattr(row, column)
        if value:
            setattr(row, column, rewrite(value))


def tickets_naming(session: Session, address: str) -> list[int]:
    """The tickets where an address is a party, owner, watcher or event author."""
    a = address.strip().lower()
    found: set[int] = set(
        session.scalars(
            select(TicketRow.id).where(
                (TicketRow.requester_address == a)
                | (TicketRow.beneficiary_address == a)
                | (TicketRow.owner == a)
            )
        )
    )
    found |= set(
        session.scalars(select(WatcherRow.ticket_id).where(WatcherRow.address == a))
    )
    found |= set(
        session.scalars(
            select(EventRow.ticket_id).where(EventRow.actor == a).distinct()
        )
    )
    return sorted(found)


def mails_naming(
    session: Session, blobs: BlobStore, address: str
) -> list[tuple[int, int | None]]:
    """The kept mails whose headers name an address, with their ticket (if any).

    Finds the person who was only in To or Cc (an outsider is no watcher):
    a rare request, so every kept mail's header block is read from its file
    (retention bounds how many there are).
    """
    found = []
    rows = session.execute(
        select(MailRow.id, MailRow.ticket_id, MailRow.blob_sha256)
        .where(MailRow.blob_sha256 != "")
        .order_by(MailRow.id)
    )
    for mail_id, ticket_id, sha in rows:
        try:
            with blobs.path_for(sha).open("rb") as kept:
                head = kept.read(_FIRST_READ)  # most header blocks end in it
                if b"\n\n" not in head and b"\n\r\n" not in head:
                    head += kept.read(_HEAD_BYTES - len(head))
        except (OSError, ValueError):
            continue  # its bytes are gone: nothing of it to find
        if headers_name(head, address):
            found.append((mail_id, ticket_id))
    return found


def mails_from(session: Session, address: str) -> list[tuple[int, int | None]]:
    """The mails an address sent, with the ticket (if any) they came to."""
    a = address.strip().lower()
    rows = session.execute(
        select(MailRow.id, MailRow.ticket_id).where(MailRow.sender == a)
    )
    return [(mail_id, ticket_id) for mail_id, ticket_id in rows]


def rewrite_ticket(session: Session, ticket_id: int, rewrite: Rewrite) -> Dropped:
    """Rewrite every text of a ticket, drop its raw mails, attachments and the
    bytes of what was sent; return what was dropped (the sent Message-IDs too)."""
    dropped = retention.drop_ticket_bytes(session, ticket_id, None)
    ticket = session.get(TicketRow, ticket_id)
    if ticket is None:
        raise LookupError(ticket_id)
    _rewrite_row(ticket, _TICKET_TEXTS, rewrite)
    if ticket.owner:
        ticket.owner = rewrite(ticket.owner)
    if ticket.rating_comment:
        ticket.rating_comment = rewrite(ticket.rating_comment)
    for watcher in session.scalars(
        select(WatcherRow).where(WatcherRow.ticket_id == ticket_id)
    ):
        _rewrite_row(watcher, ("name", "address"), rewrite)
    for event in session.scalars(
        select(EventRow).where(EventRow.ticket_id == ticket_id)
    ):
        _rewrite_row(event, _EVENT_TEXTS, rewrite)
    for mail in session.scalars(select(MailRow).where(MailRow.ticket_id == ticket_id)):
        _rewrite_row(mail, _MAIL_TEXTS, rewrite)
    for queued in session.scalars(
        select(OutboxRow).where(OutboxRow.ticket_id == ticket_id)
    ):
        if (
            queued.state == "pending"
            and rewrite(queued.recipients) != queued.recipients
        ):
            session.delete(queued)  # never sent to someone erased
            continue
        _rewrite_row(queued, ("recipients", "subject", "last_error"), rewrite)
    for answer in session.scalars(
        select(AutoAnswerRow).where(AutoAnswerRow.ticket_id == ticket_id)
    ):
        answer.address = rewrite(answer.address)
    session.flush()
    return dropped


def rewrite_mail(session: Session, mail_id: int, rewrite: Rewrite) -> Dropped:
    """Rewrite a mail's record and drop its bytes."""
    shas = retention.drop_mail_bytes(session, mail_id)
    mail = session.get(MailRow, mail_id)
    if mail is not None:
        _rewrite_row(mail, _MAIL_TEXTS, rewrite)
        session.flush()
    return Dropped(mails=len(shas), blobs=shas)


def rewrite_answers(session: Session, address: str, alias: str) -> None:
    """The answers counted for the caps: kept, under the pseudonym."""
    a = address.strip().lower()
    for answer in session.scalars(
        select(AutoAnswerRow).where(AutoAnswerRow.address == a)
    ):
        answer.address = alias
    session.flush()
