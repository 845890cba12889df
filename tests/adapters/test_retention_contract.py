"""The purge and the erasure keep one contract on every store (issue 20): in
memory, SQLite and PostgreSQL, through the use cases and the ports."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from maild.app.anonymise import Anonymise
from maild.app.ports import NewEvent, PersonStore
from maild.app.purge import Purge
from maild.core.retention import Policy, Purged
from maild.domain import (
    Attachment,
    CloseReason,
    EventKind,
    MailState,
    Person,
    TicketState,
)
from tests.adapters.test_store_contract import (  # the one fixture of stores
    MARIE,
    NOW,
    PAUL,
    SMTP,
    Desk,
    add,
    desk,  # noqa: F401
    make_ticket,
)

LATER = NOW + timedelta(days=400)
FILE = Attachment("pay.pdf", "application/pdf", b"PAYSLIP" * 10)
SHARED = Attachment("vpn.pdf", "application/pdf", b"GUIDE" * 10)


def kept_mail(on: Desk, raw: bytes, ticket_id: int | None, state: MailState) -> int:
    record = on.store.register_mail(SMTP, raw.hex()[:64].ljust(64, "0"), raw, NOW)
    with on.store.transaction() as tx:
        tx.finish_mail(record.id, state, "why", ticket_id, NOW)
    return record.id


def store_of(on: Desk) -> PersonStore:
    return cast(PersonStore, on.store)


def scene(on: Desk) -> tuple[int, int, int, int]:
    """An expired closed ticket, a recently closed one, an open one sharing a file."""
    closed = dict(status=TicketState.CLOSED, close_reason=CloseReason.ACCEPTED)
    old, recent, live = add(
        on,
        make_ticket(1, closed_at=NOW, **closed),
        make_ticket(2, closed_at=LATER - timedelta(days=10), **closed),
        make_ticket(3),
    )
    with on.store.transaction() as tx:
        tx.add_attachments(old.id, None, (FILE, SHARED))
        tx.add_attachments(live.id, None, (SHARED,))
        tx.add_watchers(recent.id, (PAUL,))
        tx.add_event(recent.id, NewEvent(EventKind.COMMENT, PAUL.address, NOW, "hi"))
    opening = kept_mail(on, b"opening of 1", old.id, MailState.DONE)
    kept_mail(on, b"reply on 1", old.id, MailState.DONE)
    kept_mail(on, b"opening of 3", live.id, MailState.DONE)
    kept_mail(on, b"spam", None, MailState.QUARANTINED)
    return old.id, recent.id, live.id, opening


def test_the_purge_removes_what_is_due_once(desk: Desk) -> None:  # noqa: F811
    old, recent, live, opening = scene(desk)
    purge = Purge(Policy(365, 30), store_of(desk), batch=1)

    assert purge.run(LATER, dry_run=True) == Purged(mails=3, attachments=2, blobs=4)
    assert purge.run(LATER) == Purged(mails=3, attachments=2, blobs=4)
    assert purge.run(LATER) == Purged()

    with desk.store.transaction() as tx:
        assert tx.attachment_names(old) == ()
        assert tx.attachment_names(live) == ("vpn.pdf",)
        assert tx.attachment_names(recent) == ()
        ticket = tx.ticket_by_id(old)
        assert ticket is not None
        assert ticket.status is TicketState.CLOSED
    assert desk.mail_row(opening)[0] is MailState.DONE  # the record stays


def test_an_erasure_rewrites_every_ticket_naming_the_address(
    desk: Desk,  # noqa: F811
) -> None:
    _, recent, _, _ = scene(desk)
    erase = Anonymise(store_of(desk), b"secret")
    assert store_of(desk).naming(PAUL.address).tickets == (recent,)

    done = erase.run(PAUL.address, "dpo", LATER)

    assert (done.tickets, done.pseudonym.endswith("@invalid")) == (1, True)
    with desk.store.transaction() as tx:
        assert tx.watchers(recent) == (Person(done.pseudonym[:-8], done.pseudonym),)
        ticket = tx.ticket_by_id(recent)
        assert ticket is not None
        assert ticket.requester == MARIE
    assert store_of(desk).naming(PAUL.address).tickets == ()
    assert erase.run(PAUL.address, "dpo", LATER).tickets == 0
    assert len(store_of(desk).naming(MARIE.address).tickets) == 3
