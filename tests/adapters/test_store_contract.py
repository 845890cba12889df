"""One contract for every store: in memory, SQLite and PostgreSQL keep the same
invariants behind the ports (maild/app/ports.py) and the outbox sender's queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from maild.adapters.database.models import MailRow, OutboxRow
from maild.adapters.database.staff import add_staff
from maild.adapters.database.store import Store
from maild.adapters.memory import MemoryStore
from maild.adapters.outgoing.outbox import OutboxSession, OutboxStore
from maild.app.ports import MAILD, DeskStore, NewEvent, TicketFilter
from maild.domain import (
    Attachment,
    Audience,
    CloseReason,
    EventKind,
    FailedDelivery,
    MailOrigin,
    MailState,
    OutboundMail,
    OutboxState,
    Person,
    Role,
    Ticket,
    TicketState,
    TicketType,
    Timer,
    Timers,
    Urgency,
)
from maild.errors import MailAlreadyFinished
from tests.support.factories import make_mail
from tests.support.stores import DATABASES, numbered_ticket, store_on

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))
MARIE = Person("Marie Curie", "marie@example.com")
PAUL = Person("Paul", "paul@example.com")
BOB = "bob@example.com"
REFUSED = (ValueError, LookupError, IntegrityError)  # a constraint says no
SMTP = MailOrigin(source="smtp")
OPEN_ORDER = (TicketState.NEW, TicketState.IN_PROGRESS, TicketState.RESOLVED)


class AnyStore(DeskStore, OutboxStore, Protocol):
    """Both roles at once; mypy checks that each store below plays them."""

    def transaction(
        self, *, relaxed: bool = False
    ) -> AbstractContextManager[OutboxSession]: ...


@dataclass
class Desk:
    store: AnyStore
    add_staff: Callable[[str, Role], None]
    outbox_rows: Callable[[], list[tuple[str, OutboxState, int, str]]]
    # a mail's record: state, reason, ticket id, sender, subject, Message-ID
    mail_row: Callable[[int], tuple[MailState, str, int | None, str, str, str]]


def memory_desk() -> Desk:
    store = MemoryStore()

    def mail_row(mail_id: int) -> tuple[MailState, str, int | None, str, str, str]:
        m = store.mail_record(mail_id)
        return (m.state, m.reason, m.ticket_id, m.sender, m.subject, m.message_id)

    return Desk(
        store,
        store.add_staff,
        lambda: [
            (q.mail.message_id, q.state, q.attempts, q.last_error)
            for q in store.outbox()
        ],
        mail_row,
    )


def database_desk(store: Store) -> Desk:
    def rows() -> list[tuple[str, OutboxState, int, str]]:
        with store.reading() as session:
            found = session.scalars(select(OutboxRow).order_by(OutboxRow.id))
            return [
                (r.message_id, OutboxState(r.state), r.attempts, r.last_error)
                for r in found
            ]

    def mail_row(mail_id: int) -> tuple[MailState, str, int | None, str, str, str]:
        with store.reading() as session:
            m = session.get_one(MailRow, mail_id)
            state = MailState(m.state)
            return (state, m.reason, m.ticket_id, m.sender, m.subject, m.message_id)

    return Desk(store, lambda a, r: add_staff(store, a, r.value, NOW), rows, mail_row)


@pytest.fixture(params=["memory", *DATABASES])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "memory":
        yield memory_desk()
        return
    with store_on(request.param, request, tmp_path) as store:
        yield database_desk(store)


def make_ticket(n: int, **changes: Any) -> Ticket:
    return numbered_ticket(n, **{"callback_due_at": None} | changes)


def every_field(n: int, mail_id: int) -> Ticket:
    """A ticket with every field set, none left to its default."""
    at = [NOW + timedelta(hours=h) for h in range(10)]
    return make_ticket(
        n,
        ticket_type=TicketType.REQUEST,
        status=TicketState.CLOSED,
        subject="Accès VPN",
        description="Ligne 1\nLigne 2",
        requester=PAUL,
        beneficiary=MARIE,
        application="VPN",
        urgency=Urgency.HIGH,
        phone="+33 1 23 45 67 89",
        owner=BOB,
        created_at=datetime(2026, 11, 30, 10, 0, tzinfo=PARIS),  # back as UTC
        callback_due_at=at[1],
        timers=Timers(*at[2:7]),
        first_call_at=at[7],
        callback_met=False,
        resolved_at=at[8],
        closed_at=at[9],
        close_reason=CloseReason.AUTO_CLOSED,
        rating_score=4,
        rating_comment="Merci",
        source_mail_id=mail_id,
        unverified_sender="dmarc=fail",
    )


def outbound(n: int, to: tuple[str, ...] = (MARIE.address,)) -> OutboundMail:
    return OutboundMail(
        f"out{n}@example.com", to, f"Sujet {n}", "texte", "", audience=Audience.POOL
    )


def in_threads(work: Callable[[], None], count: int = 4) -> None:
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def add(desk: Desk, *tickets: Ticket) -> list[Ticket]:
    with desk.store.transaction() as tx:
        return [tx.add_ticket(t) for t in tickets]


def test_a_ticket_comes_back_as_it_went_in(desk: Desk) -> None:
    mail = desk.store.register_mail(SMTP, "a" * 64, b"raw", NOW)
    full, bare = add(desk, every_field(1, mail.id), make_ticket(2))
    assert full.id != bare.id
    with desk.store.transaction() as tx:
        for ticket in (full, bare):
            assert tx.ticket_by_number(ticket.number) == ticket
            assert tx.ticket_by_id(ticket.id, for_update=True) == ticket
        assert tx.ticket_by_number("I261130_9999") is None
        assert tx.ticket_by_id(full.id + bare.id + 1) is None


def test_a_saved_ticket_keeps_its_number_and_token(desk: Desk) -> None:
    mail = desk.store.register_mail(SMTP, "a" * 64, b"raw", NOW)
    (ticket,) = add(desk, make_ticket(1))
    changed = replace(every_field(2, mail.id), id=ticket.id)
    with desk.store.transaction() as tx:
        tx.save_ticket(changed)
    with desk.store.transaction() as tx:
        kept = replace(changed, number=ticket.number, token=ticket.token)
        assert tx.ticket_by_id(ticket.id) == kept
        tx.save_ticket(ticket)  # and back to None everywhere
        assert tx.ticket_by_id(ticket.id) == ticket
        with pytest.raises(LookupError):
            tx.save_ticket(replace(ticket, id=ticket.id + 100))


@pytest.mark.parametrize("field", ["number", "token"])
def test_numbers_and_tokens_are_unique(desk: Desk, field: str) -> None:
    (first,) = add(desk, make_ticket(1))
    with pytest.raises(REFUSED), desk.store.transaction() as tx:
        tx.add_ticket(make_ticket(2, **{field: getattr(first, field)}))


def test_a_ticket_read_for_update_loses_no_concurrent_change(desk: Desk) -> None:
    (ticket,) = add(desk, make_ticket(1, rating_score=0))

    def bump() -> None:
        for _ in range(10):
            with desk.store.transaction() as tx:
                found = tx.ticket_by_number(ticket.number, for_update=True)
                assert found is not None
                assert found.rating_score is not None
                tx.save_ticket(replace(found, rating_score=found.rating_score + 1))

    in_threads(bump)
    with desk.store.transaction() as tx:
        assert tx.ticket_by_id(ticket.id) == replace(ticket, rating_score=40)


def listing_tickets() -> list[Ticket]:
    at = [NOW + timedelta(hours=h) for h in range(6)]
    return [
        make_ticket(1, callback_due_at=at[3], timers=Timers(breach_at=at[3])),
        make_ticket(2, callback_due_at=at[1], owner=BOB,
                    status=TicketState.IN_PROGRESS),
        make_ticket(3, callback_due_at=at[1], beneficiary=PAUL, callback_met=False),
        make_ticket(4, callback_due_at=at[0], status=TicketState.CLOSED),
        make_ticket(5, callback_due_at=None, requester=PAUL, owner="x@example.com"),
        make_ticket(6, callback_due_at=at[2], status=TicketState.RESOLVED,
                    timers=Timers(breach_at=at[5]), owner=BOB),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("which", "limit", "expected"),
    [
        (TicketFilter(), 50, [2, 3, 6, 1, 5]),  # open, by deadline then id
        (TicketFilter(), 2, [2, 3]),
        (TicketFilter(states=frozenset(TicketState)), 50, [4, 2, 3, 6, 1, 5]),
        (TicketFilter(states=frozenset({TicketState.NEW})), 50, [3, 1, 5]),
        (TicketFilter(party=PAUL.address), 50, [3, 5]),
        (TicketFilter(owner=BOB), 50, [2, 6]),
        (TicketFilter(owner_or_pool=BOB), 50, [2, 3, 6, 1]),
        (TicketFilter(is_callback_missed=True), 50, [3]),
        (TicketFilter(breach_before=NOW + timedelta(hours=3)), 50, [1]),
        (TicketFilter(owner=BOB, states=frozenset({TicketState.RESOLVED})), 50, [6]),
    ],
)
def test_listings_filter_and_come_most_urgent_first(
    desk: Desk, which: TicketFilter, limit: int, expected: list[int]
) -> None:
    add(desk, *listing_tickets())
    with desk.store.transaction() as tx:
        found = tx.tickets(which, limit)
    assert [int(t.number[-4:]) for t in found] == expected


def test_counts_and_tickets_opened_since(desk: Desk) -> None:
    add(desk, *listing_tickets(), make_ticket(7, created_at=NOW - timedelta(hours=2)))
    with desk.store.transaction() as tx:
        counts = tx.count_by_state()
        assert counts == dict(zip(OPEN_ORDER, (4, 1, 1), strict=True))
        assert tx.tickets_opened_since(MARIE.address, NOW - timedelta(hours=1)) == 5
        assert tx.tickets_opened_since(MARIE.address, NOW - timedelta(hours=3)) == 6


def test_watchers_attachments_and_events_keep_their_order(desk: Desk) -> None:
    first, second = add(desk, make_ticket(1), make_ticket(2))
    files = (
        Attachment("b.pdf", "application/pdf", b"%PDF"),
        Attachment("a.png", "image/png", b"png", is_inline=True, content_id="c"),
    )
    with desk.store.transaction() as tx:
        tx.add_watchers(first.id, (PAUL, MARIE))
        tx.add_watchers(first.id, ())
        assert tx.opening_message_id(first.id) is None
        note = NewEvent(EventKind.NOTE, BOB, NOW, "interne", is_internal=True)
        created = NewEvent(EventKind.CREATED, MARIE.address, NOW, "s", "m1@x", False)
        ids = [tx.add_event(first.id, e) for e in (note, created, note)]
        tx.add_attachments(first.id, ids[1], files)
        tx.add_attachments(second.id, None, files[1:])
    with desk.store.transaction() as tx:
        assert ids == sorted(set(ids))
        assert tx.watchers(first.id) == (PAUL, MARIE)
        assert tx.watchers(second.id) == ()
        assert tx.attachment_names(first.id) == ("b.pdf", "a.png")
        assert tx.attachment_names(second.id) == ("a.png",)
        assert tx.opening_message_id(first.id) == "m1@x"
    with pytest.raises(REFUSED), desk.store.transaction() as tx:
        tx.add_watchers(first.id, (PAUL,))  # once a ticket


def test_sequences_count_per_name_under_concurrency(desk: Desk) -> None:
    taken: list[int] = []

    def take() -> None:
        for _ in range(10):
            with desk.store.transaction() as tx:
                taken.append(tx.next_sequence("I261130"))

    in_threads(take)
    assert sorted(taken) == list(range(1, 41))
    with desk.store.transaction() as tx:
        assert [tx.next_sequence("S261130") for _ in range(3)] == [1, 2, 3]


def test_a_mail_is_known_by_its_place_or_its_bytes(desk: Desk) -> None:
    register = desk.store.register_mail
    imap = MailOrigin("imap:hd/INBOX", uidvalidity=7, uid=1)
    first = register(imap, "a" * 64, b"one", NOW)
    assert (first.state, first.attempts, first.is_new) == (MailState.PENDING, 1, True)
    again = register(imap, "a" * 64, b"one", NOW)  # the same place
    assert (again.id, again.attempts, again.is_new) == (first.id, 2, False)
    moved = register(replace(imap, uid=9), "a" * 64, b"one", NOW)  # the same bytes
    assert (moved.id, moved.attempts) == (first.id, 3)
    assert desk.store.refund_attempt(first.id).attempts == 2
    smtp = register(SMTP, "b" * 64, b"two", NOW)
    assert (smtp.is_new, register(SMTP, "b" * 64, b"two", NOW).id) == (True, smtp.id)
    assert register(SMTP, "c" * 64, b"three", NOW).id not in (first.id, smtp.id)
    with desk.store.transaction() as tx:
        tx.finish_mail(first.id, MailState.DONE, "ticket", None, NOW, make_mail())
    done = register(imap, "a" * 64, b"one", NOW)
    assert (done.state, done.attempts, done.is_new) == (MailState.DONE, 2, False)
    assert desk.store.refund_attempt(first.id).attempts == 2  # final: kept
    with pytest.raises(LookupError):
        desk.store.refund_attempt(first.id + 100)


def test_a_mail_is_finished_once(desk: Desk) -> None:
    record = desk.store.register_mail(SMTP, "a" * 64, b"raw", NOW)
    with desk.store.transaction() as tx:
        tx.finish_mail(record.id, MailState.QUARANTINED, "outsider", None, NOW)
    with pytest.raises(MailAlreadyFinished) as caught, desk.store.transaction() as tx:
        tx.finish_mail(record.id, MailState.DONE, "ticket", None, NOW)
    assert caught.value.state is MailState.QUARANTINED
    with pytest.raises(LookupError), desk.store.transaction() as tx:
        tx.finish_mail(record.id + 100, MailState.DONE, "ticket", None, NOW)


def test_a_finished_mail_keeps_its_head_and_fate(desk: Desk) -> None:
    ticket_mail = desk.store.register_mail(SMTP, "a" * 64, b"one", NOW)
    refused = desk.store.register_mail(SMTP, "b" * 64, b"two", NOW)
    assert desk.mail_row(ticket_mail.id) == (MailState.PENDING, "", None, "", "", "")
    head = make_mail(
        subject="Écran noir " + "x" * 2000,
        message_id="m1@client.example.com",
        sender=MARIE,
    )
    with desk.store.transaction() as tx:
        ticket = tx.add_ticket(make_ticket(1, source_mail_id=ticket_mail.id))
        tx.finish_mail(ticket_mail.id, MailState.DONE, "ticket I", ticket.id, NOW, head)
        tx.finish_mail(
            refused.id, MailState.QUARANTINED, "too_large: 9 bytes", None, NOW
        )
    assert desk.mail_row(ticket_mail.id) == (
        MailState.DONE,
        "ticket I",
        ticket.id,
        "marie@example.com",
        ("Écran noir " + "x" * 2000)[:998],  # a header line's length
        "m1@client.example.com",
    )
    assert desk.mail_row(refused.id) == (
        MailState.QUARANTINED,
        "too_large: 9 bytes",
        None,
        "",
        "",
        "",
    )


def write_everything(tx: OutboxSession, mail_id: int) -> None:
    """Write one of each kind of row, then fail."""
    ticket = tx.add_ticket(make_ticket(tx.next_sequence("I261130")))
    tx.add_watchers(ticket.id, (PAUL,))
    tx.add_event(ticket.id, NewEvent(EventKind.CREATED, MAILD, NOW, ""))
    tx.enqueue(outbound(1), b"data", ticket.id, NOW)
    tx.record_answer(PAUL.address, NOW, is_held=False, template="t", ticket_id=None)
    tx.finish_mail(mail_id, MailState.DONE, "ticket", ticket.id, NOW)
    assert tx.claim_digest_day(261130)
    raise RuntimeError


def test_a_transaction_that_raises_leaves_nothing(desk: Desk) -> None:
    record = desk.store.register_mail(SMTP, "a" * 64, b"raw", NOW)
    with pytest.raises(RuntimeError), desk.store.transaction() as tx:
        write_everything(tx, record.id)
    with desk.store.transaction() as tx:
        assert tx.ticket_by_number(make_ticket(1).number) is None
        assert tx.next_sequence("I261130") == 1
        assert tx.answers_since((NOW, NOW), address=PAUL.address) == (0, 0)
        assert tx.claim_digest_day(261130)
    assert desk.store.outbox_counts() == {}
    assert desk.store.register_mail(SMTP, "a" * 64, b"raw", NOW).attempts == 2


def test_answers_are_counted_since_two_moments(desk: Desk) -> None:
    (ticket,) = add(desk, make_ticket(1))
    hour, day = NOW - timedelta(hours=1), NOW - timedelta(days=1)
    with desk.store.transaction() as tx:
        for at, is_held, ticket_id in [
            (NOW - timedelta(hours=5), False, ticket.id),
            (NOW - timedelta(minutes=5), False, ticket.id),
            (NOW - timedelta(minutes=1), True, ticket.id),
            (NOW - timedelta(minutes=2), False, None),
            (NOW - timedelta(days=2), False, None),
        ]:
            tx.record_answer(
                PAUL.address, at, is_held=is_held, template="t", ticket_id=ticket_id
            )
        tx.record_answer(
            MARIE.address, NOW, is_held=True, template="held", ticket_id=None
        )
        assert tx.answers_since((day, hour), address=PAUL.address) == (3, 2)
        assert tx.answers_since((day, hour), ticket_id=ticket.id) == (2, 1)
        assert tx.was_answered_since(MARIE.address, "held", hour)  # held counts here
        assert not tx.was_answered_since(MARIE.address, "t", hour)
        assert not tx.was_answered_since(PAUL.address, "t", NOW)


def test_a_bounce_marks_the_first_queued_mail_it_names(desk: Desk) -> None:
    with desk.store.transaction() as tx:
        tx.enqueue(outbound(1), b"one", None, NOW)
        tx.enqueue(outbound(2), b"two", None, NOW)
        names = ("elsewhere@x", "out2@example.com", "out1@example.com")
        assert tx.mark_bounced(names, "bounced: 550") == "out2@example.com"
        assert tx.mark_bounced(("elsewhere@x",), "bounced") is None
        assert tx.mark_bounced((), "bounced") is None
    assert desk.outbox_rows() == [
        ("out1@example.com", OutboxState.PENDING, 0, ""),
        ("out2@example.com", OutboxState.FAILED, 0, "bounced: 550"),
    ]
    with pytest.raises(REFUSED), desk.store.transaction() as tx:
        tx.enqueue(outbound(1), b"again", None, NOW)  # one Message-ID, one mail


def test_the_digests_of_a_day_are_claimed_once(desk: Desk) -> None:
    with desk.store.transaction() as tx:
        claimed = [tx.claim_digest_day(d) for d in (261130, 261130, 261129, 261201)]
    assert claimed == [True, False, False, True]


def test_staff_roles_and_the_lookups_of_classification(desk: Desk) -> None:
    desk.add_staff("Chef@Example.com", Role.SUPERVISOR)
    desk.add_staff("tech@example.com", Role.TECHNICIAN)
    roles = {"chef@example.com": Role.SUPERVISOR, "tech@example.com": Role.TECHNICIAN}
    assert desk.store.staff() == roles
    upper = Person("", "Paul@Example.com")
    (ticket,) = add(desk, make_ticket(1, beneficiary=upper, owner=BOB))
    with desk.store.transaction() as tx:
        assert tx.staff() == roles
        tx.add_watchers(ticket.id, (Person("W", "w@example.com"),))
        tx.enqueue(outbound(1), b"one", ticket.id, NOW)
        tx.enqueue(outbound(2), b"two", None, NOW)
    lookup = desk.store.ticket_for_message_ids
    assert lookup(("x@y", "out1@example.com")) == ticket.number
    assert lookup(("out2@example.com",)) is None  # about no ticket
    assert lookup(()) is None
    parties = {MARIE.address, "paul@example.com", BOB, "w@example.com"}
    assert desk.store.ticket_parties(ticket.number) == frozenset(parties)
    assert desk.store.ticket_parties("I261130_9999") is None


def test_due_tickets_come_earliest_first(desk: Desk) -> None:
    at = [NOW + timedelta(minutes=m) for m in (-30, -10, -20, 5)]
    add(
        desk,
        *(make_ticket(n, timers=Timers(reminder_at=a)) for n, a in enumerate(at, 1)),
        make_ticket(5, timers=Timers(breach_at=at[0])),
    )
    with desk.store.transaction() as tx:
        ids = {t.number: t.id for t in tx.tickets(TicketFilter(), 10)}
    due = desk.store.due_tickets
    assert due(Timer.REMINDER, NOW, 10) == [ids[f"I261130_000{n}"] for n in (1, 3, 2)]
    assert due(Timer.REMINDER, NOW, 2) == [ids["I261130_0001"], ids["I261130_0003"]]
    assert due(Timer.BREACH, NOW, 10) == [ids["I261130_0005"]]
    assert due(Timer.AUTO_CLOSE, NOW, 10) == []


def test_the_outbox_queue_from_due_to_sent_deferred_or_failed(desk: Desk) -> None:
    (ticket,) = add(desk, make_ticket(1))
    with desk.store.transaction() as tx:
        for n in range(1, 5):
            tx.enqueue(outbound(n, (MARIE.address, BOB)), b"data%d" % n, ticket.id, NOW)
    store = desk.store
    assert store.due_outbox(NOW - timedelta(seconds=1), 10) == []
    due = store.due_outbox(NOW, 3)
    assert [(d.message_id, d.recipients, d.data, d.attempts) for d in due] == [
        (f"out{n}@example.com", (MARIE.address, BOB), b"data%d" % n, 0)
        for n in (1, 2, 3)
    ]
    store.mark_sent([due[0].id], NOW)
    store.defer(due[1].id, "451 later", NOW + timedelta(minutes=1))
    with store.transaction() as tx:
        failed = tx.mark_failed(due[2].id, "550 no such user")
        assert tx.mark_failed(due[2].id + 100, "550") is None
    assert failed == FailedDelivery(
        "out3@example.com", ticket.id, (MARIE.address, BOB), "Sujet 3", "pool",
        "550 no such user",
    )  # fmt: skip
    store.mark_sent([due[2].id], NOW)  # failed stays failed
    assert [d.message_id for d in store.due_outbox(NOW, 10)] == ["out4@example.com"]
    later = store.due_outbox(NOW + timedelta(minutes=1), 10)
    assert [(d.message_id, d.attempts) for d in later] == [
        ("out2@example.com", 1),
        ("out4@example.com", 0),
    ]
    counts = {OutboxState.SENT: 1, OutboxState.PENDING: 2, OutboxState.FAILED: 1}
    assert store.outbox_counts() == counts
    assert [row[1:] for row in desk.outbox_rows()] == [
        (OutboxState.SENT, 1, ""),
        (OutboxState.PENDING, 1, "451 later"),
        (OutboxState.FAILED, 1, "550 no such user"),
        (OutboxState.PENDING, 0, ""),
    ]


def test_the_sender_takes_the_due_mails_in_the_order_they_were_queued(
    desk: Desk,
) -> None:
    (ticket,) = add(desk, make_ticket(1))
    with desk.store.transaction() as tx:
        for n in range(1, 4):
            tx.enqueue(outbound(n, (MARIE.address,)), b"data%d" % n, ticket.id, NOW)
    assert desk.store.take_due(NOW - timedelta(seconds=1), 10) == []
    taken = desk.store.take_due(NOW, 2)
    assert [(d.message_id, d.data) for d in taken] == [
        ("out1@example.com", b"data1"),
        ("out2@example.com", b"data2"),
    ]
    desk.store.mark_sent([d.id for d in taken], NOW)
    assert [row[:2] for row in desk.outbox_rows()] == [
        ("out1@example.com", OutboxState.SENT),
        ("out2@example.com", OutboxState.SENT),
        ("out3@example.com", OutboxState.PENDING),
    ]


def test_the_memory_store_refuses_a_transaction_inside_another() -> None:
    store = MemoryStore()  # SQLite's writer lock would wait for ever there
    with pytest.raises(RuntimeError, match="inside"), store.transaction():
        store.register_mail(SMTP, "a" * 64, b"raw", NOW)
