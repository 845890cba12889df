"""SendDigests: each business morning, once, every technician and supervisor
gets a digest of the tickets that concern them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from maild.domain import Person, Role, Ticket, TicketView
from tests.unit.app.conftest import ALICE, BOB, CHEF, MARIE, MON, AppDesk

TUE = MON + timedelta(days=1)
DIGEST_TIME = TUE.replace(hour=7, minute=30)  # 08:30 in Paris


def readers(desk: AppDesk) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.template, s.to) for s in desk.sent() if s.template.startswith("digest")]


def test_digests_go_out_once_each_business_morning(desk: AppDesk) -> None:
    assert desk.app.digests.send(MON) == 3  # Monday 10:00 in Paris
    assert desk.app.digests.send(MON.replace(hour=15)) == 0
    assert desk.app.digests.send(DIGEST_TIME - timedelta(minutes=1)) == 0
    assert desk.app.digests.send(DIGEST_TIME) == 3
    assert (
        readers(desk)
        == [
            ("digest.technician", (ALICE,)),
            ("digest.technician", (BOB,)),
            ("digest.supervisor", (CHEF,)),
        ]
        * 2
    )


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 28, 10, 0, tzinfo=UTC),  # Saturday
        datetime(2026, 12, 25, 9, 0, tzinfo=UTC),  # Christmas, a Friday
        MON.replace(hour=7),  # 08:00 in Paris: before digest_at
    ],
    ids=["saturday", "holiday", "too-early"],
)
def test_no_digest_on_days_off_or_before_the_hour(desk: AppDesk, at: datetime) -> None:
    assert desk.app.digests.send(at) == 0
    assert desk.store.outbox() == ()


def numbers(tickets: Sequence[Ticket | TicketView]) -> list[str]:
    return [t.number for t in tickets]


def test_each_reader_gets_the_tickets_that_concern_them(desk: AppDesk) -> None:
    desk.app.digests.send(MON)  # Monday's are out
    mine = desk.open(subject="a")  # Alice's, never called: missed at 13:00
    bobs = desk.open(subject="b")  # Bob's, called in time
    pool = desk.open(subject="c")  # unclaimed: missed at 13:00
    done = desk.open(subject="d")  # resolved by Alice
    gone = desk.open(subject="e")  # cancelled
    desk.reply(mine, ALICE, "CLAIM")
    desk.reply(bobs, BOB, "CLAIM\nCALL")
    desk.reply(done, ALICE, "CLAIM\nRESOLVED")
    desk.reply(gone, MARIE, "CANCEL")
    desk.app.check_sla(MON.replace(hour=13))  # the breaches
    desk.clock.now = TUE.replace(hour=7)
    soon = desk.open(subject="f", text="Urgency: high")  # due 09:00 in Paris
    assert desk.app.check_sla(DIGEST_TIME) >= 3
    by_reader = {s.to: s for s in desk.sent() if s.template.startswith("digest")}
    assert numbers(by_reader[ALICE,].notice.tickets) == numbers(
        (mine, done, pool, soon)
    )
    assert numbers(by_reader[BOB,].notice.tickets) == numbers((bobs, pool, soon))
    supervisor = by_reader[CHEF,].notice
    assert numbers(supervisor.tickets) == numbers((mine, pool, soon))
    assert supervisor.summary_lines == (
        "new: 2",
        "in_progress: 2",
        "resolved: 1",
        "in_breach: 2",
        "at_risk: 1",
    )
    assert by_reader[ALICE,].notice.summary_lines == ()


def test_staff_added_with_the_command_line_get_theirs(desk: AppDesk) -> None:
    desk.store.add_staff("nadia@example.com", Role.TECHNICIAN)
    desk.store.add_staff("omar@example.com", Role.SUPERVISOR)
    assert desk.app.digests.send(MON) == 5
    assert ("digest.technician", ("nadia@example.com",)) in readers(desk)
    assert ("digest.supervisor", ("omar@example.com",)) in readers(desk)


def test_without_supervisors_only_technicians_get_one(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(helpdesk={"supervisors": []})
    desk.open(sender=Person("", MARIE))
    assert desk.app.digests.send(MON) == 2
    assert [t for t, _ in readers(desk)] == ["digest.technician"] * 2
