"""The daemon: wiring, loops, signals, and the one catch-all around a message.

Builds the adapters from Settings, starts the intakes (SMTP and/or IMAP) and
the outbox sender (a process of its own, maild.runtime.sender), and stops them on
SIGTERM/SIGINT: the mail in hand is finished, the outbox flushed as far as it
goes, and the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from types import FrameType

from maild.adapters.database.engine import Checkpointer, is_sqlite, sqlite_path
from maild.adapters.database.instances import Instances
from maild.adapters.database.store import Store, open_store
from maild.adapters.intake.imap import ImapIntake
from maild.adapters.intake.parse_worker import AHEAD, ParserPool
from maild.adapters.intake.smtp import SmtpIntake
from maild.adapters.oauth2 import TokenSource
from maild.adapters.outgoing.mime import build_message
from maild.adapters.outgoing.outbox import OutboxSender
from maild.adapters.scheduler import TICK_SECONDS, SlaTicker
from maild.adapters.template_samples import check_templates
from maild.app.handle_mail import HandleMail
from maild.app.ports import Clock, MailHandler
from maild.config import Settings, service_manager
from maild.core.parse import ParseLimits
from maild.domain import MailDisposition, MailOrigin, OutboxState
from maild.errors import ConfigError, TransientError
from maild.runtime.logs import configure_logging
from maild.runtime.metrics import MeasuredHandler, Metrics
from maild.runtime.retention import daily_purge
from maild.runtime.roles import RoleKeeper, single_instance
from maild.runtime.sender import SendingProcess
from maild.runtime.sender_wiring import make_renderer, outbox_sender, system_clock
from maild.runtime.watchdog import Heartbeats, Notifier, Watchdog

log = logging.getLogger(__name__)

STOP_SECONDS = 20
PURGE_AT = "03:15"  # the daily purge (README, Personal data): a quiet hour


@dataclass
class Parts:
    """Everything the daemon and the CLI build from Settings."""

    settings: Settings
    store: Store
    parser: ParserPool
    service: HandleMail
    outbox: OutboxSender

    def close(self) -> None:
        self.parser.close()
        self.store.close()


def build(
    settings: Settings,
    clock: Clock = system_clock,
    *,
    migrate: bool = True,
    parse_workers: int = 2,
    checkpoints: bool = True,
) -> Parts:
    """Wire the service and its adapters from settings.

    checkpoints=False: commits leave SQLite's checkpoints to a Checkpointer.
    """
    limits = settings.limits
    parser = ParserPool(  # its workers start while the rest is built
        ParseLimits(
            max_attachment_bytes=limits.max_attachment_bytes,
            max_parts=limits.max_parts,
            max_mime_depth=limits.max_mime_depth,
            max_header_bytes=limits.max_header_bytes,
        ),
        parse_seconds=limits.parse_seconds,
        workers=parse_workers,
        log_setup=partial(configure_logging, settings.log),  # each worker's
    )
    try:
        store = open_store(
            settings, migrate=migrate, checkpoints=checkpoints, fenced=True
        )
        service = HandleMail(
            settings, store, parser, make_renderer(settings), build_message, clock
        )
        outbox = outbox_sender(
            settings, store, service.outbound, clock, threading.Event()
        )
        parser.wait_ready()
    except BaseException:
        parser.close()
        raise
    return Parts(settings, store, parser, service, outbox)


class SafeHandler:
    """Handles one message; the only place a bug in handling is caught."""

    def __init__(self, parts: Parts, after: Callable[[], None]) -> None:
        self.parts = parts
        self.after = after

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        try:
            disposition = self.parts.service.handle(raw, origin)
        except TransientError:
            raise
        except Exception as exc:
            log.exception("handling failed, mail quarantined: %s", exc)
            disposition = self.parts.service.quarantine(
                raw, origin, f"internal error: {type(exc).__name__}"
            )
        self.after()
        return disposition


def run(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run the daemon until stop is set or a signal arrives; return the exit code.

    The outbox is sent by a process of its own (maild.runtime.sender), on the wall
    clock: an injected clock is for build(), whose parts tests drive.
    """
    stop = stop or threading.Event()
    _check_operator_templates(settings)
    if not settings.trusted_authserv_ids:
        log.warning(
            "security.trusted_authserv_ids is empty: commands are trusted on the "
            "From address alone, which anyone can forge; name your MTA's "
            "authserv-id there (README, Security)"
        )
    alone = ExitStack()  # SQLite: this instance alone, until it ends
    database = sqlite_path(settings.database_url)
    if database is not None:
        alone.enter_context(single_instance(database))
    with alone:
        return _run(settings, stop)


def _run(settings: Settings, stop: threading.Event) -> int:
    parts = build(settings, checkpoints=False)  # the Checkpointer does them
    sending = SendingProcess(settings)
    roles = _role_keeper(settings, parts.store)
    threads: list[threading.Thread] = []
    intake: SmtpIntake | None = None
    ticker: SlaTicker | None = None
    checkpointer: Checkpointer | None = None
    imap: ImapIntake | None = None
    is_started = threading.Event()  # store migrated, intakes listening
    manager = service_manager()
    heartbeats = Heartbeats()
    metrics = Metrics(parts.store, (lambda: imap is not None and imap.is_logged_in)
                      if settings.imap is not None else None, roles.roles)  # fmt: skip
    measured = MeasuredHandler(SafeHandler(parts, sending.wake), metrics.handling)
    watchdog = Watchdog(
        Notifier(manager),
        manager,
        heartbeats,
        # ready once the mailbox is logged in, or another instance holds it
        lambda: (
            is_started.is_set()
            and (imap is None or imap.is_logged_in or not roles.holds("imap"))
        ),
        lambda: _status_line(parts, measured),
    )
    try:  # whatever fails from here, the finally stops what was started
        if is_sqlite(settings.database_url):
            checkpointer = Checkpointer(settings.database_url)
            checkpointer.start()
        sending.start()
        roles.start()
        _settle_memory()
        if threading.current_thread() is threading.main_thread():
            _on_signals(stop)
        watchdog.start()
        if settings.metrics is not None:
            metrics.serve(settings.metrics)
        starting = SlaTicker(
            _beating(
                heartbeats,
                lambda now: roles.as_holder(
                    "sla", lambda: _check_sla(parts, now, sending.wake)
                ),
            ),
            system_clock,
            settings.sla.timezone,
        )
        purge = daily_purge(settings, parts.store, system_clock)

        def purge_if_holder() -> None:
            # with several instances, the holder of the sla role purges (fenced)
            roles.as_holder("sla", lambda: purge() or 0)

        starting.add_daily("purge", purge_if_holder, PURGE_AT)
        starting.start()
        ticker = starting
        intake = _start_smtp_intake(settings, measured)
        if settings.imap is not None:
            imap = ImapIntake(
                settings.imap,
                measured,
                max_mail_bytes=settings.limits.max_mail_bytes,
                prepare=parts.parser.parse_ahead,
                prepare_ahead=AHEAD,
                tokens=TokenSource(settings.imap.oauth2, system_clock)
                if settings.imap.oauth2
                else None,
                heartbeat=heartbeats.beater("imap"),
                on_login=metrics.mailbox_logged_in,
            )
            try:  # a server maild cannot work with stops it here (if it holds imap)
                roles.as_holder("imap", partial(imap.run_once, stop))
            except TransientError as exc:  # server or database unavailable
                log.warning("imap: %s; will keep trying", exc)
            consume = partial(
                roles.run_role, "imap", imap.run, beat=heartbeats.beater("imap")
            )
            threads.append(_supervised("imap", consume, stop))
            threads[-1].start()
        is_started.set()
        log.info("maild running")
        stop.wait()
    finally:
        log.info("maild stopping")
        stop.set()
        watchdog.stop()  # STOPPING=1
        metrics.close()
        roles.end_tenures()
        if intake is not None:
            intake.stop()
        if ticker is not None:
            ticker.stop()
        deadline = time.monotonic() + STOP_SECONDS
        for thread in threads:  # the intakes finish the mail in hand
            thread.join(max(0.0, deadline - time.monotonic()))
        roles.stop()  # a standby takes the roles at once
        # then the outbox sends what they queued, and stops
        sending.stop(max(1.0, deadline - time.monotonic()))
        if checkpointer is not None:
            checkpointer.stop()
        parts.close()
    return 0


def _role_keeper(settings: Settings, store: Store) -> RoleKeeper:
    """Who runs what (docs/DECISIONS.md, "Several instances"): the IMAP consumer
    and the SLA tick under leases; the sender and the SMTP intake everywhere."""
    leased = ("imap", "sla") if settings.imap is not None else ("sla",)
    everywhere = ("sender", "smtp_intake") if settings.smtp_intake else ("sender",)
    return RoleKeeper(
        store,
        Instances(store.engine, settings.lease_seconds, system_clock),
        leased,
        everywhere,
        is_shared=not is_sqlite(settings.database_url),
    )


def _check_operator_templates(settings: Settings) -> None:
    """Refuse to start on an operator's template that does not render: every
    mail it should answer would be quarantined (`maild check-config` lists all)."""
    if settings.templates_dir is None:
        return  # the shipped ones are checked by the tests
    failures = check_templates(lambda language: make_renderer(settings, language))
    if failures:
        raise ConfigError("templates.dir", str(failures[0]))


def _settle_memory() -> None:
    """Keep the objects of start-up out of the garbage collector's scans.

    Modules, templates, mappers and settings live as long as the daemon; a
    full collection walked them all again and again while mail was handled.
    """
    gc.collect()
    gc.freeze()


def _supervised(
    name: str, loop: Callable[[threading.Event], None], until: threading.Event
) -> threading.Thread:
    """A thread that runs loop until `until` is set, restarting it after a bug."""

    def guarded() -> None:
        delay = 1.0
        while not until.is_set():
            try:
                loop(until)
            except Exception:
                log.exception("%s loop failed; restarting in %.0f s", name, delay)
                until.wait(delay)
                delay = min(delay * 2, 60.0)
            else:
                return

    return threading.Thread(target=guarded, name=name, daemon=True)


def _beating(
    heartbeats: Heartbeats, check: Callable[[datetime], int]
) -> Callable[[datetime], int]:
    """The SLA tick, reporting to the watchdog once each tick is over."""

    def tick(now: datetime) -> int:
        try:
            return check(now)
        finally:  # failed or not, the tick came back: it is not stuck
            heartbeats.beat("sla", TICK_SECONDS)

    return tick


def _status_line(parts: Parts, measured: MeasuredHandler) -> str:
    """systemd's STATUS line: what the daemon did and has left to do."""
    pending = parts.store.outbox_counts().get(OutboxState.PENDING, 0)
    return f"{measured.handled} mails handled since start; outbox: {pending} pending"


def _start_smtp_intake(settings: Settings, handler: MailHandler) -> SmtpIntake | None:
    if settings.smtp_intake is None:
        return None
    helpdesk = settings.helpdesk
    intake = SmtpIntake(
        handler,
        settings.smtp_intake.host,
        settings.smtp_intake.port,
        frozenset({helpdesk.incident_address, helpdesk.request_address}),
        settings.limits.max_mail_bytes,
    )
    try:
        intake.start()
    except OSError as exc:  # the port is taken, or not ours to bind
        where = f"{settings.smtp_intake.host}:{settings.smtp_intake.port}"
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        problem = f"cannot listen on {where}: {why}"
        raise ConfigError("smtp_intake.port", problem) from exc
    return intake


def _check_sla(parts: Parts, now: datetime, wake: Callable[[], None]) -> int:
    fired = parts.service.check_sla(now)
    if fired:
        wake()
    return fired


def _on_signals(stop: threading.Event) -> None:
    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
