"""`maild doctor`: every check in one go, one line each. Wiring and I/O.

Runs the probes (configuration, database, storage, mailbox, relay) and reads
the desk's figures (outbox, quarantine, SLA), then lets core.health judge
each. The checks and their names are SPEC's ("Production interfaces (second
wave)"); a check that cannot run because another failed says so and fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime

from maild.adapters.database.engine import HEAD_REVISION
from maild.adapters.database.health import desk_figures, schema_revision
from maild.adapters.database.store import Store, open_store
from maild.adapters.intake.mailbox_probe import probe_mailbox
from maild.adapters.outgoing.relay_probe import probe_relay
from maild.adapters.template_samples import check_templates
from maild.config import Settings
from maild.core import health
from maild.core.health import Check, DeskFigures
from maild.errors import ConfigError, MaildError
from maild.runtime.sender_wiring import make_renderer, system_clock


def config_failed(error: ConfigError) -> list[Check]:
    """The report when the configuration itself does not load."""
    return [
        health.fail(
            "config", str(error), "correct the key named, then `maild check-config`"
        )
    ]


def diagnose(settings: Settings, now: datetime | None = None) -> list[Check]:
    """Every check of `maild doctor`, in SPEC's order."""
    now = now or datetime.now(UTC)
    checks = [_config(settings)]
    store: Store | None = None
    try:
        store = open_store(settings, migrate=False)
        checks.append(health.judge_database(schema_revision(store), HEAD_REVISION))
    except MaildError as exc:
        checks.append(_database_down(exc))
    checks.append(_storage(settings))
    checks.append(_mailbox(settings, now))
    checks.append(_relay(settings))
    figures = _figures(store, now) if checks[1].status is health.Status.OK else None
    if figures is None:
        unread = "not read: the database check failed"
        fix = "fix the database first"
        checks += [health.fail(n, unread, fix) for n in ("outbox", "quarantine", "sla")]
    else:
        checks += [
            health.judge_outbox(figures, now),
            health.judge_quarantine(figures),
            health.judge_sla(figures),
        ]
    if store is not None:
        store.close()
    return checks


def _config(settings: Settings) -> Check:
    try:
        failures = check_templates(lambda language: make_renderer(settings, language))
    except ConfigError as exc:
        return health.fail("config", str(exc), "correct the key named")
    if failures:
        return health.fail(
            "config",
            f"templates.dir: {failures[0]}",
            "`maild check-config` names every template that fails",
        )
    trusted = (
        "sender verification on"
        if settings.trusted_authserv_ids
        else "commands trusted on the From address alone (README, Security)"
    )
    return health.ok("config", f"{settings.path}: valid; {trusted}")


def _database_down(exc: BaseException) -> Check:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return health.fail(
        "database",
        f"unreachable: {first}",
        "start the database server, or correct database.url",
    )


def _figures(store: Store | None, now: datetime) -> DeskFigures | None:
    if store is None:
        return None
    try:
        return desk_figures(store, now, health.THRESHOLDS.recent)
    except MaildError:
        return None


def _storage(settings: Settings) -> Check:
    where = settings.storage_dir
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=where):
            pass  # created and removed: the folder takes files
        usage = shutil.disk_usage(where)
    except OSError as exc:
        return health.fail(
            "storage",
            f"{where}: {exc.strerror or exc}",
            f"let the user maild runs as ({os.getuid()}) write to {where}",
        )
    return health.judge_storage(str(where), usage.free, usage.total)


def _mailbox(settings: Settings, now: datetime) -> Check:
    if settings.imap is None:
        return health.ok("imap", "no [imap] section: no mailbox to watch")
    probe, inbox = probe_mailbox(settings.imap, system_clock)
    failed = health.judge_mailbox_access(probe)
    if failed is not None or inbox is None:
        return failed or health.fail("imap", probe.where, "read the server's log")
    check = health.judge_inbox(inbox.waiting, inbox.oldest_at, now)
    seen = ", ".join(f"{k} {v}" for k, v in probe.seen)
    return Check(check.name, check.status, f"{probe.where}: {check.detail}; {seen}",
                 check.fix)  # fmt: skip


def _relay(settings: Settings) -> Check:
    if settings.smtp is None:
        outbox = settings.eml_dir
        return health.ok("smtp", f"no [smtp] section: mail kept as .eml in {outbox}")
    probe = probe_relay(settings.smtp, settings.helpdesk.pool_address, system_clock)
    return health.judge_relay(probe, settings.smtp.starttls)
