"""The command line's read models on SQLite and on a real PostgreSQL: the
filters of `tickets list`, and every mail's fate for `mails list|show`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maild.adapters.database.mail_report import list_mails, show_mail
from maild.adapters.database.report import TicketQuery, list_tickets
from maild.adapters.database.store import Store
from maild.app.ports import NewEvent
from maild.domain import (
    EventKind,
    MailOrigin,
    MailOutcome,
    MailState,
    Person,
    Ticket,
    TicketState,
)
from tests.support.factories import make_mail
from tests.support.stores import DATABASES, numbered_ticket, store_on

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MARIE = Person("Marie Curie", "marie@example.com")
PAUL = Person("Paul", "paul@example.com")


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_on(request.param, request, tmp_path) as store:
        yield store


def ticket(n: int, **changes: Any) -> Ticket:
    return numbered_ticket(n, **{"callback_due_at": NOW + timedelta(hours=4)} | changes)


def add(store: Store, *tickets: Ticket) -> None:
    with store.transaction() as tx:
        for t in tickets:
            tx.add_ticket(t)


def numbers(store: Store, **query: Any) -> list[int]:
    return [int(t["number"][-4:]) for t in list_tickets(store, TicketQuery(**query))]


def test_tickets_list_filters(store: Store) -> None:
    later = NOW + timedelta(days=1)
    add(
        store,
        ticket(1),
        ticket(2, status=TicketState.IN_PROGRESS, owner="alice@example.com"),
        ticket(3, requester=PAUL, created_at=later, callback_due_at=None),
        ticket(4, subject="ÉCRAN NOIR", description="100% noir", callback_met=False),
        ticket(5, description="L'écran clignote", first_call_at=NOW),
    )
    assert numbers(store) == [1, 2, 3, 4, 5]
    assert numbers(store, status=TicketState.NEW) == [1, 3, 4, 5]
    assert numbers(store, owner="Alice@Example.com") == [2]
    assert numbers(store, requester="PAUL@example.com") == [3]
    assert numbers(store, since=later) == [3]
    assert numbers(store, status=TicketState.NEW, since=later) == [3]
    # Missed: recorded so, or the deadline past and no call yet.
    assert numbers(store, breached_by=NOW + timedelta(hours=1)) == [4]
    assert numbers(store, breached_by=NOW + timedelta(hours=5)) == [1, 2, 4]
    # Subject or description, case ignored beyond ASCII; % is a character.
    assert numbers(store, search="écran") == [4, 5]
    assert numbers(store, search="Écran Noir") == [4]
    assert numbers(store, search="0% n") == [4]
    assert numbers(store, search="%") == [4]
    assert numbers(store, search="_") == []


SMTP = MailOrigin(source="smtp")


def mail_in(store: Store, n: int, at: datetime = NOW) -> int:
    return store.register_mail(SMTP, f"{n:064x}", b"raw %d" % n, at).id


def test_every_mail_has_its_fate(store: Store) -> None:
    opened, reply, robot, refused, pending = (mail_in(store, n) for n in range(5))
    late = mail_in(store, 5, NOW + timedelta(hours=2))
    head = make_mail(subject="Écran noir", message_id="m1@example.com")
    with store.transaction() as tx:
        t = tx.add_ticket(ticket(1, source_mail_id=opened))
        tx.finish_mail(opened, MailState.DONE, f"ticket {t.number}", t.id, NOW, head)
        tx.finish_mail(reply, MailState.DONE, "reply on I…: 1 done", t.id, NOW, head)
        tx.add_event(
            t.id,
            NewEvent(EventKind.COMMENT, MARIE.address, NOW, "hi", "m2", mail_id=reply),
        )
        tx.finish_mail(robot, MailState.IGNORED, "loop: ours", t.id, NOW, head)
        tx.finish_mail(refused, MailState.QUARANTINED, "too_large: 9 bytes", None, NOW)
        tx.finish_mail(late, MailState.DONE, "help answered", None, NOW, head)
    listed = list_mails(store)
    assert [(m["id"], m["outcome"], m["ticket"], m["reason"]) for m in listed] == [
        (opened, "ticket", t.number, None),
        (reply, "reply", t.number, None),
        (robot, "ignored", t.number, "loop: ours"),
        (refused, "quarantined", None, "too_large: 9 bytes"),
        (pending, "pending", None, "not handled yet (1 attempt so far)"),
        (late, "reply", None, None),
    ]
    assert (listed[0]["subject"], listed[0]["sender"]) == ("Écran noir", MARIE.address)
    assert (listed[3]["subject"], listed[3]["sender"]) == ("", "")
    assert listed[0]["received_at"] == NOW.isoformat()
    for fate in (*MailOutcome, MailState.PENDING):
        assert list_mails(store, fate) == [m for m in listed if m["outcome"] == fate]
    assert list_mails(store, since=NOW + timedelta(hours=1)) == listed[-1:]


def test_show_mail_gives_its_record_bytes_and_ticket(store: Store) -> None:
    reply = mail_in(store, 1)
    with store.transaction() as tx:
        t = tx.add_ticket(ticket(1))
        tx.add_event(
            t.id,
            NewEvent(
                EventKind.CLAIMED, "alice@example.com", NOW, "", "m", mail_id=reply
            ),
        )
        tx.finish_mail(
            reply, MailState.DONE, "reply on I: 1 done", t.id, NOW, make_mail()
        )
    shown = show_mail(store, reply)
    assert shown is not None
    assert (shown["outcome"], shown["summary"], shown["state"]) == (
        "reply",
        "reply on I: 1 done",
        "done",
    )
    assert (shown["ticket"], shown["ticket_subject"], shown["ticket_status"]) == (
        t.number,
        "Imprimante en panne",
        "new",
    )
    assert [e["kind"] for e in shown["events"]] == ["claimed"]
    store.blobs.wait_durable()
    assert Path(shown["blob"]).read_bytes() == b"raw 1"
    assert shown["blob_kept"] is True
    assert show_mail(store, reply + 100) is None
