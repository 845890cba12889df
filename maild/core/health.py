"""Health: what `maild doctor` and the watchdog conclude from what was measured.

Pure: the probes (adapters) measure, these functions judge. Each check gets a
status (ok, warn, fail), a detail saying what was seen and, unless ok, the
fix an admin can apply. The watchdog's rule, which loops are stale, is here
too: a loop promises to report again within some seconds; it is stale once
that promise plus a grace has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


# SPEC "Production interfaces (second wave)": the names of doctor's checks.
CHECK_NAMES: Final = (
    "config",
    "database",
    "storage",
    "imap",
    "smtp",
    "outbox",
    "quarantine",
    "sla",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of `maild doctor`."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def exit_status(checks: Iterable[Check]) -> int:
    """0 when every check is ok, 1 with a warning, 2 with a failure."""
    statuses = {check.status for check in checks}
    if Status.FAIL in statuses:
        return 2
    return 1 if Status.WARN in statuses else 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where a measure turns from ok to warn (and to fail)."""

    outbox_warn_after: timedelta = timedelta(minutes=15)
    outbox_fail_after: timedelta = timedelta(hours=2)
    inbox_warn_after: timedelta = timedelta(minutes=10)
    free_warn_share: float = 0.10  # of the storage file system
    free_fail_bytes: int = 100 * 1024 * 1024
    recent: timedelta = timedelta(days=7)  # quarantined for a bug, lately


THRESHOLDS: Final = Thresholds()


@dataclass(frozen=True, slots=True)
class DeskFigures:
    """What the database says at one moment; read by doctor and the metrics."""

    tickets: Mapping[str, int]  # by state
    mails: Mapping[str, int]  # by outcome: ticket, reply, ignored, quarantined, pending
    outbox_pending: int
    outbox_failed: int
    oldest_pending_at: datetime | None
    quarantine: int
    quarantined_for_bugs: int  # internal error or handling failed, lately
    callback_met: int
    callback_missed: int
    breached_open: tuple[str, ...]  # open, not called back, deadline passed
    open_by_urgency: Mapping[str, int] = field(default_factory=dict)  # not closed


def judge_database(revision: str | None, head: str) -> Check:
    """The schema's revision against the code's."""
    if revision == head:
        return ok("database", f"reachable, schema at {head}")
    if revision is None:
        return fail(
            "database",
            "reachable, but holds no maild schema",
            "run `maild db upgrade` (maild run does it for SQLite)",
        )
    return fail(
        "database",
        f"schema at {revision}, this maild needs {head}",
        "run `maild db upgrade`" if revision < head else "upgrade maild itself",
    )


def judge_storage(
    where: str, free: int, total: int, limits: Thresholds = THRESHOLDS
) -> Check:
    """Free space where mail and attachments are kept."""
    detail = f"{where}: {_size(free)} free of {_size(total)}"
    fix = f"free space on the file system of {where}, or grow it"
    if free < limits.free_fail_bytes:
        return fail("storage", detail, fix)
    if total and free / total < limits.free_warn_share:
        return warn("storage", detail, fix)
    return ok("storage", detail)


def judge_inbox(
    waiting: int, oldest_at: datetime | None, now: datetime,
    limits: Thresholds = THRESHOLDS,
) -> Check:  # fmt: skip
    """Mail waiting in the inbox: only a moment, while the daemon runs."""
    if not waiting or oldest_at is None:
        return ok("imap", "logged in, inbox empty")
    age = now - oldest_at
    detail = f"{waiting} mail(s) wait in the inbox, the oldest for {_age(age)}"
    if age > limits.inbox_warn_after:
        return warn(
            "imap",
            detail,
            "is `maild run` running? its log says why mail is kept in the inbox",
        )
    return ok("imap", f"logged in, {detail}")


def judge_outbox(
    figures: DeskFigures, now: datetime, limits: Thresholds = THRESHOLDS
) -> Check:
    """Notifications queued and not sent: a stuck relay or a stopped sender."""
    oldest = figures.oldest_pending_at
    detail = f"{figures.outbox_pending} pending, {figures.outbox_failed} failed"
    if oldest is None:
        return ok("outbox", detail)
    age = now - oldest
    detail += f", the oldest pending for {_age(age)}"
    fix = (
        "is `maild run` running and the relay reachable? the log's "
        "'outbox' lines say why mail is deferred"
    )
    if age > limits.outbox_fail_after:
        return fail("outbox", detail, fix)
    if age > limits.outbox_warn_after:
        return warn("outbox", detail, fix)
    return ok("outbox", detail)


def judge_quarantine(figures: DeskFigures) -> Check:
    """Quarantined mail: spam is normal, a mail quarantined for a bug is not."""
    detail = f"{figures.quarantine} quarantined"
    if figures.quarantined_for_bugs:
        return warn(
            "quarantine",
            f"{detail}, {figures.quarantined_for_bugs} of them lately for an "
            "internal error or failed handling",
            "read the traceback in the log, then `maild quarantine retry ID` "
            "(`maild mails list --outcome quarantined` lists them)",
        )
    return ok("quarantine", detail)


def judge_sla(figures: DeskFigures) -> Check:
    """Open tickets whose call-back deadline passed with no call."""
    detail = f"call-back met {figures.callback_met}, missed {figures.callback_missed}"
    breached = figures.breached_open
    if breached:
        shown = ", ".join(breached[:5]) + (" ..." if len(breached) > 5 else "")
        return warn(
            "sla",
            f"{len(breached)} open ticket(s) past their call-back: {shown}",
            "claim and call them back (`maild tickets list --breached`)",
        )
    return ok("sla", detail)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A loop's report: at `at` (monotonic seconds) it was well, and it will
    report again within `within` seconds."""

    at: float
    within: float


def stale_loops(
    beats: Mapping[str, Heartbeat], now: float, grace: float
) -> tuple[str, ...]:
    """The loops whose promise to report again, plus grace, has passed."""
    return tuple(
        sorted(name for name, b in beats.items() if now > b.at + b.within + grace)
    )


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True, slots=True)
class Probe:
    """How far a conversation with a server went: the step that failed ("" if
    none), its error, and what was seen on the way."""

    where: str
    failed_step: str = ""
    error: str = ""
    seen: tuple[tuple[str, str], ...] = ()  # (what, how it went), in order


_RELAY_FIXES: Final = {
    "connect": "start the relay or correct smtp.host and smtp.port",
    "starttls": "check the relay's certificate, or set smtp.starttls = false",
    "auth": "correct smtp.username and smtp.password (or password_file)",
    "mail_from": "let the relay accept smtp.from_address as a sender",
    "rcpt_to": "let the relay accept mail to the pool address",
}
_MAILBOX_FIXES: Final = {
    "connect": "start the mail server or correct imap.host, imap.port and imap.tls",
    "login": "correct imap.username and imap.password (or password_file)",
    "capabilities": "use a server with MOVE or UIDPLUS (maild cannot move mail)",
    "select": "check that imap.inbox names a folder of the mailbox",
}


def judge_relay(probe: Probe, is_starttls_configured: bool) -> Check:
    """The relay test: connect, STARTTLS, AUTH, MAIL FROM, RCPT TO, RSET."""
    if probe.failed_step:
        return fail(
            "smtp",
            f"{probe.where}: {probe.failed_step} failed: {probe.error}",
            _RELAY_FIXES.get(probe.failed_step, "read the relay's log"),
        )
    detail = f"{probe.where}: " + ", ".join(f"{k} {v}" for k, v in probe.seen)
    if dict(probe.seen).get("starttls") == "offered" and not is_starttls_configured:
        return warn(
            "smtp",
            detail + "; mail goes to the relay in clear",
            "set smtp.starttls = true",
        )
    return ok("smtp", detail)


def judge_mailbox_access(probe: Probe) -> Check | None:
    """A failed login, connection or capability; None when the mailbox works."""
    if not probe.failed_step:
        return None
    return fail(
        "imap",
        f"{probe.where}: {probe.failed_step} failed: {probe.error}",
        _MAILBOX_FIXES.get(probe.failed_step, "read the mail server's log"),
    )
