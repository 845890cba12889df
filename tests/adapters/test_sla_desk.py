"""The call-back SLA on a real store with a fake clock: reminders, breach alerts,
re-announcements, PDR retries, automatic closure and digests, without sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from maild.adapters.database.staff import add_staff
from maild.adapters.scheduler import SlaTicker
from tests.support.desk import MON, PARIS, Desk
from tests.support.waiting import wait_until

SUPERVISOR = "chef@example.com"
POOL = "techniciens@example.com"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path)
    yield handle
    handle.close()


def open_ticket(desk: Desk, urgency: str = "moyenne") -> str:
    """Marie's ticket, of the given urgency; its number."""
    return desk.open("Poste bloqué", f"Urgence: {urgency}\n\nAide")


def test_reminder_then_breach_for_an_unclaimed_ticket(desk: Desk) -> None:
    number = open_ticket(desk)  # medium: 4 business hours, due 13:00, reminder at 12:00
    (ticket,) = desk.tickets()
    assert datetime.fromisoformat(ticket["callback_due_at"]) == MON.replace(hour=13)
    pool_before = len(desk.sent_to(POOL))
    desk.at(MON.replace(hour=11, minute=59))
    assert desk.events(number, "reminder") == []
    desk.at(MON.replace(hour=12))
    assert len(desk.events(number, "reminder")) == 1
    assert len(desk.sent_to(POOL)) > pool_before  # unclaimed: the pool is reminded
    desk.at(MON.replace(hour=12, minute=30))
    assert len(desk.events(number, "reminder")) == 1  # once only
    assert desk.events(number, "breach") == []
    desk.at(MON.replace(hour=13))
    assert len(desk.events(number, "breach")) == 1
    assert any("missed" in s.lower() or number in s for s in desk.sent_to(SUPERVISOR))
    (ticket,) = desk.tickets()
    assert ticket["callback_met"] is False
    desk.at(MON.replace(hour=15))
    assert len(desk.events(number, "breach")) == 1


def test_a_supervisor_added_with_the_command_line_hears_of_a_breach(
    desk: Desk,
) -> None:
    added = "adjoint@example.com"
    add_staff(desk.store, added, "supervisor", MON)
    number = open_ticket(desk)
    desk.at(MON.replace(hour=13))  # medium: due 13:00
    assert len(desk.events(number, "breach")) == 1
    assert any(number in s for s in desk.sent_to(added))
    assert any(number in s for s in desk.sent_to(SUPERVISOR))


def test_unclaimed_ticket_is_announced_again_until_claimed(desk: Desk) -> None:
    number = open_ticket(desk)
    desk.at(MON.replace(minute=29))
    assert desk.events(number, "reannounced") == []
    desk.at(MON.replace(minute=30))
    desk.at(MON.replace(minute=45))
    desk.at(MON.replace(hour=10))
    assert len(desk.events(number, "reannounced")) == 2  # 09:30 and 10:00
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM")
    desk.at(MON.replace(hour=11))
    assert len(desk.events(number, "reannounced")) == 2


def test_a_call_meets_the_sla_and_stops_reminders(desk: Desk) -> None:
    number = open_ticket(desk)
    desk.clock.now = MON.replace(hour=10)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM\nCALL reached her")
    desk.at(MON.replace(hour=12))
    desk.at(MON.replace(hour=14))
    assert desk.events(number, "reminder") == []
    assert desk.events(number, "breach") == []
    (ticket,) = desk.tickets()
    assert ticket["callback_met"] is True
    assert ticket["first_call_at"] is not None


def test_pdr_meets_the_sla_and_schedules_a_retry(desk: Desk) -> None:
    number = open_ticket(desk)
    desk.clock.now = MON.replace(hour=10)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM\nPDR no answer")
    desk.at(MON.replace(hour=11, minute=59))
    assert desk.events(number, "reminder") == []
    desk.at(MON.replace(hour=12))  # 2 h after the PDR
    (retry,) = desk.events(number, "reminder")
    assert retry["text"] == "pdr_retry"
    assert desk.sent_to("alice@example.com")
    desk.at(MON.replace(hour=14))
    assert desk.events(number, "breach") == []
    assert desk.tickets()[0]["callback_met"] is True


def test_friday_evening_ticket_waits_for_monday(desk: Desk) -> None:
    friday = datetime(2026, 11, 27, 17, 30, tzinfo=PARIS)
    desk.clock.now = friday
    number = open_ticket(desk)
    (ticket,) = desk.tickets()
    assert datetime.fromisoformat(ticket["callback_due_at"]) == MON.replace(
        hour=11, minute=30
    )
    assert desk.at(datetime(2026, 11, 28, 12, 0, tzinfo=PARIS)) == 0  # Saturday
    desk.at(MON.replace(hour=10, minute=29))
    assert desk.events(number, "reminder") == []
    desk.at(MON.replace(hour=10, minute=30))  # 75 % of 4 business hours
    assert len(desk.events(number, "reminder")) == 1


def test_reminders_wait_for_business_hours_but_breaches_do_not(desk: Desk) -> None:
    desk.clock.now = MON.replace(hour=14)
    number = open_ticket(desk)  # due 18:00, reminder 17:00
    desk.at(MON.replace(hour=19))  # evening: the breach goes out at once
    assert len(desk.events(number, "breach")) == 1
    assert desk.events(number, "reminder") == []  # the breach replaced it
    assert desk.events(number, "reannounced") == []  # not in the evening
    desk.at(datetime(2026, 12, 1, 8, 0, tzinfo=PARIS))  # Tuesday 08:00
    assert len(desk.events(number, "reannounced")) == 1


def test_resolved_ticket_closes_itself_after_the_delay(desk: Desk) -> None:
    number = open_ticket(desk)
    desk.clock.now = MON.replace(hour=10)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM\nRESOLVED done")
    desk.at(MON + timedelta(days=6, hours=23))
    assert desk.tickets()[0]["status"] == "resolved"
    desk.at(MON + timedelta(days=7, hours=2))
    (ticket,) = desk.tickets()
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "auto_closed")
    assert len(desk.events(number, "auto_closed")) == 1
    assert ticket["callback_met"] is True  # RESOLVED came before any call


def test_morning_digest_once_per_business_day(desk: Desk) -> None:
    open_ticket(desk)
    tuesday = MON + timedelta(days=1)
    desk.at(tuesday.replace(hour=8, minute=29))  # Monday's timers fire, no digest
    assert desk.sent_to("bob@example.com") == []
    desk.at(tuesday.replace(hour=8, minute=30))
    digests = [s for to, s in desk.queued() if "alice@example.com" in to]
    assert len(digests) == 1
    assert len(desk.sent_to("bob@example.com")) == 1
    assert len([s for s in desk.sent_to(SUPERVISOR) if "digest" in s.lower()]) == 1
    desk.at(tuesday.replace(hour=9))
    assert len(desk.sent_to("bob@example.com")) == 1
    desk.at(datetime(2026, 12, 5, 9, 0, tzinfo=PARIS))  # Saturday: no digest
    assert len(desk.sent_to("bob@example.com")) == 1
    desk.at(datetime(2026, 12, 7, 8, 45, tzinfo=PARIS))  # next Monday: one more
    assert len(desk.sent_to("bob@example.com")) == 2


def test_a_restart_neither_loses_nor_repeats_a_timer(
    desk: Desk, tmp_path: Path
) -> None:
    number = open_ticket(desk)
    desk.at(MON.replace(hour=12))
    desk.restart()
    desk.at(MON.replace(hour=12, minute=1))
    assert len(desk.events(number, "reminder")) == 1
    desk.at(MON.replace(hour=13))
    assert len(desk.events(number, "breach")) == 1


def test_due_timers_are_found_through_an_index(desk: Desk) -> None:
    with desk.store.reading() as session:
        plan = session.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT id FROM tickets WHERE reminder_at <= :now "
                "ORDER BY reminder_at LIMIT 200"
            ),
            {"now": MON},
        ).all()
    assert "ix_tickets_reminder_at" in " ".join(str(row) for row in plan)


def test_the_ticker_calls_the_service_with_the_injected_clock() -> None:
    calls: list[datetime] = []
    ticker = SlaTicker(
        lambda now: calls.append(now) or 0, lambda: MON, "Europe/Paris", seconds=3600
    )
    ticker.start()
    try:
        wait_until(lambda: calls, 10, "the first tick")
    finally:
        ticker.stop()
    assert calls == [MON]


def test_stats_give_sla_and_median_times(desk: Desk) -> None:
    from maild.adapters.database.report import stats

    number = open_ticket(desk)
    desk.clock.now = MON.replace(hour=9, minute=30)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM")
    desk.clock.now = MON.replace(hour=10)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "CALL")
    desk.clock.now = MON.replace(hour=11)
    desk.mail("alice@example.com", f"Re: [HD {number}]", "RESOLVED done")
    desk.clock.now = MON.replace(hour=11, minute=5)
    desk.mail("marie@example.com", f"Re: [HD {number}]", "ACCEPT\nRATE 4")
    figures = stats(desk.store)
    assert figures["median_minutes"] == {
        "to_claim": 30.0,
        "to_first_call": 60.0,
        "to_resolve": 120.0,
    }
    assert figures["callback"]["medium"] == {"met": 1, "missed": 0, "pending": 0}
    assert figures["rating"] == {"count": 1, "mean": 4.0}
    assert figures["backlog"]["closed"] == 1


def test_the_daily_purge_is_due_at_a_quarter_past_three_in_the_calendars_zone() -> None:
    ticker = SlaTicker(lambda now: 0, lambda: MON, "Europe/Paris", seconds=3600)
    ticker.add_daily("purge", lambda: None, "03:15")
    ticker.start()
    try:
        job = ticker.scheduler.get_job("purge")
        due = job.next_run_time.astimezone(ZoneInfo("Europe/Paris"))
    finally:
        ticker.stop()
    assert (due.hour, due.minute) == (3, 15)
    assert timedelta(0) < due - datetime.now(UTC) <= timedelta(days=1)
