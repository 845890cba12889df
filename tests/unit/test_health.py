"""core.health: doctor's judgments and the watchdog's rule, on values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maild.core import health
from maild.core.health import Check, DeskFigures, Heartbeat, Probe, Status

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
GIB = 1024**3


def figures(**changes: object) -> DeskFigures:
    values: dict[str, object] = {
        "tickets": {"new": 1},
        "mails": {"ticket": 1},
        "outbox_pending": 0,
        "outbox_failed": 0,
        "oldest_pending_at": None,
        "quarantine": 0,
        "quarantined_for_bugs": 0,
        "callback_met": 0,
        "callback_missed": 0,
        "breached_open": (),
    }
    values.update(changes)
    return DeskFigures(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), 0),
        ((Status.OK, Status.OK), 0),
        ((Status.OK, Status.WARN), 1),
        ((Status.WARN, Status.FAIL, Status.OK), 2),
    ],
)
def test_exit_status_is_the_worst_check(
    statuses: tuple[Status, ...], expected: int
) -> None:
    checks = [Check("config", s, "") for s in statuses]
    assert health.exit_status(checks) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (None, Status.OK),
        (timedelta(minutes=5), Status.OK),
        (timedelta(minutes=16), Status.WARN),
        (timedelta(hours=3), Status.FAIL),
    ],
)
def test_outbox_by_the_age_of_its_oldest_pending_mail(
    age: timedelta | None, expected: Status
) -> None:
    oldest = NOW - age if age is not None else None
    check = health.judge_outbox(
        figures(outbox_pending=2, oldest_pending_at=oldest), NOW
    )
    assert check.status is expected
    assert check.detail.startswith("2 pending, 0 failed")
    assert bool(check.fix) is (expected is not Status.OK)


@pytest.mark.parametrize(
    ("free", "total", "expected"),
    [
        (50 * GIB, 100 * GIB, Status.OK),
        (5 * GIB, 100 * GIB, Status.WARN),
        (50 * 1024**2, 100 * GIB, Status.FAIL),
        (1024**2, 8 * 1024**2, Status.FAIL),
    ],
)
def test_storage_by_free_space(free: int, total: int, expected: Status) -> None:
    check = health.judge_storage("/var/lib/maild", free, total)
    assert check.status is expected
    assert "/var/lib/maild" in check.detail


@pytest.mark.parametrize(
    ("revision", "expected_fix"),
    [
        ("0004", ""),
        ("0003", "run `maild db upgrade`"),
        ("0009", "upgrade maild itself"),
        (None, "run `maild db upgrade` (maild run does it for SQLite)"),
    ],
)
def test_database_schema_against_head(revision: str | None, expected_fix: str) -> None:
    check = health.judge_database(revision, "0004")
    assert check.fix == expected_fix
    assert check.status is (Status.OK if not expected_fix else Status.FAIL)


def test_inbox_with_an_old_mail_warns_a_fresh_one_does_not() -> None:
    assert health.judge_inbox(0, None, NOW).status is Status.OK
    fresh = health.judge_inbox(1, NOW - timedelta(minutes=1), NOW)
    assert fresh.status is Status.OK
    old = health.judge_inbox(3, NOW - timedelta(hours=1), NOW)
    assert old.status is Status.WARN
    assert "3 mail(s)" in old.detail
    assert "60 min" in old.detail


def test_sla_warns_and_names_the_breached_open_tickets() -> None:
    assert health.judge_sla(figures()).status is Status.OK
    late = tuple(f"I261205_000{i}" for i in range(1, 8))
    check = health.judge_sla(figures(breached_open=late))
    assert check.status is Status.WARN
    assert "7 open ticket(s)" in check.detail
    assert "I261205_0005 ..." in check.detail
    assert "--breached" in check.fix


def test_quarantine_warns_only_for_mail_quarantined_by_a_bug() -> None:
    assert health.judge_quarantine(figures(quarantine=40)).status is Status.OK
    check = health.judge_quarantine(figures(quarantine=40, quarantined_for_bugs=2))
    assert check.status is Status.WARN
    assert "quarantine retry" in check.fix


@pytest.mark.parametrize(
    ("step", "fix_names"),
    [
        ("connect", "smtp.host"),
        ("starttls", "smtp.starttls"),
        ("auth", "smtp.password"),
        ("mail_from", "smtp.from_address"),
        ("rcpt_to", "pool address"),
    ],
)
def test_relay_failure_names_its_step_and_fix(step: str, fix_names: str) -> None:
    check = health.judge_relay(Probe("relay:25", step, "refused"), False)
    assert check.status is Status.FAIL
    assert f"{step} failed: refused" in check.detail
    assert fix_names in check.fix


def test_relay_that_offers_tls_unused_warns() -> None:
    probe = Probe("relay:25", seen=(("starttls", "offered"),))
    assert health.judge_relay(probe, False).status is Status.WARN
    done = Probe("relay:25", seen=(("starttls", "done"),))
    assert health.judge_relay(done, True).status is Status.OK


def test_mailbox_access_failure_names_the_login() -> None:
    assert health.judge_mailbox_access(Probe("imap:143")) is None
    check = health.judge_mailbox_access(Probe("imap:143", "login", "bad password"))
    assert check is not None
    assert check.status is Status.FAIL
    assert "imap.password" in check.fix


@pytest.mark.parametrize(
    ("now", "expected"),
    [(10.0, ()), (12.9, ()), (13.1, ("imap",)), (100.0, ("imap", "sla"))],
)
def test_a_loop_is_stale_once_its_promise_and_the_grace_passed(
    now: float, expected: tuple[str, ...]
) -> None:
    beats = {"imap": Heartbeat(at=10.0, within=1.0), "sla": Heartbeat(10.0, 30.0)}
    assert health.stale_loops(beats, now, grace=2.0) == expected


def test_ages_and_sizes_read_as_a_person_says_them() -> None:
    old = health.judge_outbox(
        figures(outbox_pending=1, oldest_pending_at=NOW - timedelta(days=3)), NOW
    )
    assert old.detail.endswith("the oldest pending for 3 days")
    hours = health.judge_outbox(
        figures(outbox_pending=1, oldest_pending_at=NOW - timedelta(hours=5)), NOW
    )
    assert hours.detail.endswith("for 5 h")
    big = health.judge_storage("/srv", 3 * 1024**4, 4 * 1024**4)
    assert big.detail == "/srv: 3.0 TiB free of 4.0 TiB"
    small = health.judge_storage("/srv", 512, 1024**2)
    assert small.detail == "/srv: 512 B free of 1.0 MiB"
