"""Bench harness: the timed SMTP sink, the daemon under test, its memory. I/O.

Reuses the test support: Dovecot from tests.support.dovecot, the sink from
tests.support.smtp_sink (here it also notes when each mail arrived), the
configuration from tests.support.daemon. The daemon runs as a subprocess,
`python -m maild run` (or `python -m bench.profiled` to profile it); a
sampler thread keeps the peak RSS (VmHWM) of it and of every descendant
(the forkserver and its parse workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from maild.adapters.database.models import MailRow
from tests.support.daemon import ROOT, run_maild, write_config
from tests.support.dovecot import DovecotServer
from tests.support.smtp_sink import ReceivedMail, SmtpSink, _Handler


@dataclass
class _TimedHandler(_Handler):
    """The test sink's handler, noting the arrival time of each mail."""

    arrivals: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        with self.changed:
            self.arrivals.extend(
                [time.monotonic()] * (len(self.received) - len(self.arrivals))
            )
        return answer


class TimedSink(SmtpSink):
    """SmtpSink that tells when (time.monotonic) each message was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self._handler = _TimedHandler()

    def arrivals(self) -> list[tuple[float, ReceivedMail]]:
        handler = self._handler
        assert isinstance(handler, _TimedHandler)
        with handler.changed:
            return list(zip(handler.arrivals, handler.received, strict=True))

    def count(self) -> int:
        with self._handler.changed:
            return len(self._handler.received)


def imap_extra(server: DovecotServer) -> str:
    """The [imap] section that points maild at server's helpdesk mailbox."""
    return server.config_section()


@dataclass
class MemoryPeaks:
    """VmHWM in KiB: the daemon's, and each descendant's by pid."""

    daemon_kib: int = 0
    children_kib: dict[int, tuple[str, int]] = field(default_factory=dict)
    # CPU seconds (user + system) at the last sample: the daemon, its children
    daemon_cpu_s: float = 0.0
    children_cpu_s: dict[int, float] = field(default_factory=dict)
    senders: set[int] = field(default_factory=set)  # the outbox sender's pids

    def as_json(self) -> dict[str, Any]:
        kids = sorted(self.children_kib.values(), key=lambda item: -item[1])
        return {
            "daemon_cpu_s": round(self.daemon_cpu_s, 1),
            "children_cpu_s": round(sum(self.children_cpu_s.values()), 1),
            "sender_cpu_s": round(
                sum(self.children_cpu_s.get(pid, 0.0) for pid in self.senders), 1
            ),
            "daemon_mib": round(self.daemon_kib / 1024, 1),
            "children": [
                {"name": name, "peak_mib": round(kib / 1024, 1)} for name, kib in kids
            ],
            "children_max_mib": round(max((k for _, k in kids), default=0) / 1024, 1),
        }


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _descendants(root: int) -> list[tuple[int, int]]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == pid]
        found.extend((kid, pid) for kid in kids)
        frontier.extend(kids)
    return found


def _label(pid: int, parent: int, root: int) -> str:
    """Name a descendant: forkserver, resource tracker, parse worker or sender."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    if comm == "maild-sender":  # maild.runtime.sender names its process so
        return "sender"
    if parent != root:
        return "parse worker"
    for hint in (b"forkserver", b"resource_tracker"):
        if hint in cmdline:
            return hint.decode()
    return "child"


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of pid so far, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kib(value: str) -> int:
    return int(value.split()[0]) if value else 0


class MemorySampler:
    """Samples VmHWM of a process tree every interval until stopped."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks = MemoryPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        """Take one sample now (call it just before stopping the daemon)."""
        status = _status(self.pid)
        self.peaks.daemon_kib = max(
            self.peaks.daemon_kib, _kib(status.get("VmHWM", ""))
        )
        cpu = _cpu_seconds(self.pid)
        if cpu is not None:
            self.peaks.daemon_cpu_s = cpu
        for child, parent in _descendants(self.pid):
            kid = _status(child)
            if not kid:
                continue
            child_cpu = _cpu_seconds(child)
            if child_cpu is not None:
                self.peaks.children_cpu_s[child] = child_cpu
            label = _label(child, parent, self.pid)
            if label == "sender":
                self.peaks.senders.add(child)
            name = f"{label}[{child}]"
            old = self.peaks.children_kib.get(child, (name, 0))[1]
            self.peaks.children_kib[child] = (
                name,
                max(old, _kib(kid.get("VmHWM", ""))),
            )

    def stop(self) -> MemoryPeaks:
        self._stop.set()
        self._thread.join()
        return self.peaks

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


@dataclass
class RunningDaemon:
    """A maild daemon started by the bench."""

    config: Path
    process: subprocess.Popen[bytes]
    intake_port: int
    log: Path
    started_at: float  # time.monotonic() just before the process was started
    ready_at: float  # the SMTP intake answered
    sampler: MemorySampler

    def stop(self, timeout: float = 60) -> MemoryPeaks:
        """Sample memory one last time, SIGTERM, wait; return the peaks."""
        self.sampler.sample()
        peaks = self.sampler.stop()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("maild did not stop:\n" + self.log.read_text()) from None
        return peaks


def start_maild(
    directory: Path,
    sink_port: int,
    *,
    database_url: str,
    extra: str = "",
    profile_dir: Path | None = None,
    is_timers: bool = False,
    before_start: Callable[[Path], None] | None = None,
) -> RunningDaemon:
    """Write a config in directory and start the daemon; wait for its intake.

    With profile_dir it runs under bench.profiled (cProfile, or perf_counter
    step timers when is_timers).
    """
    directory.mkdir(parents=True, exist_ok=True)
    config, port = write_config(
        directory, sink_port=sink_port, database_url=database_url, extra=extra
    )
    if before_start is not None:
        before_start(config)
    if database_url.startswith("postgresql"):  # `run` migrates SQLite only
        done = run_maild(config, "db", "upgrade")
        if done.returncode != 0:
            raise RuntimeError(f"maild db upgrade failed: {done.stderr}")
    module = ["-m", "maild"]
    if profile_dir is not None:
        module = ["-m", "bench.profiled", "--out", str(profile_dir)]
        module += ["--timers"] if is_timers else []
    log = directory / "maild.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, *module, "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    sampler = MemorySampler(process.pid)
    sampler.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sampler.stop()
            raise RuntimeError("maild exited at start:\n" + log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return RunningDaemon(
                    config, process, port, log, started, time.monotonic(), sampler
                )
        except OSError:
            time.sleep(0.02)  # polling for the intake port, with a deadline
    process.kill()
    sampler.stop()
    raise RuntimeError("maild did not open its intake:\n" + log.read_text())


_TABLES = ("mails", "outbox", "tickets", "events")


class DbProbe:
    """Read-only counts from the daemon's database, to know when it is done.

    Only rows after `since` (the highest ids of a database filled before the
    run) are counted: a range of the primary key, so polling a database of a
    million tickets costs next to nothing and does not slow the daemon down.
    """

    def __init__(self, url: str, since: dict[str, int] | None = None) -> None:
        self.engine = create_engine(url)
        self.since = since or dict.fromkeys(_TABLES, 0)
        self.last_handled: datetime | None = None

    def highest_ids(self) -> dict[str, int]:
        """The highest id of each table now (0 when empty)."""
        with self.engine.connect() as conn:
            return {
                table: int(
                    conn.execute(text(f"SELECT COALESCE(max(id), 0) FROM {table}"))
                    .scalar_one()
                )
                for table in _TABLES
            }  # fmt: skip

    def monotonic_of_last_handled(self) -> float:
        """When the last mail was committed, on the time.monotonic() clock."""
        assert self.last_handled is not None
        ago = (datetime.now(UTC) - self.last_handled).total_seconds()
        return time.monotonic() - ago

    def _by_state(self, conn: Any, table: str) -> dict[str, int]:
        rows = conn.execute(
            text(f"SELECT state, count(*) FROM {table} WHERE id > :n GROUP BY state"),
            {"n": self.since[table]},
        )
        return {state: int(n) for state, n in rows.tuples()}

    def _count(self, conn: Any, table: str) -> int:
        query = text(f"SELECT count(*) FROM {table} WHERE id > :n")
        return int(conn.execute(query, {"n": self.since[table]}).scalar_one())

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            mails = self._by_state(conn, "mails")
            outbox = self._by_state(conn, "outbox")
            tickets = self._count(conn, "tickets")
            events = self._count(conn, "events")
            self.last_handled = conn.execute(
                select(func.max(MailRow.handled_at)).where(
                    MailRow.id > self.since["mails"]
                )
            ).scalar_one()
        return {
            "mails_pending": mails.get("pending", 0),
            "mails_done": mails.get("done", 0),
            "mails_ignored": mails.get("ignored", 0),
            "mails_quarantined": mails.get("quarantined", 0),
            "outbox_pending": outbox.get("pending", 0),
            "outbox_sent": outbox.get("sent", 0),
            "outbox_failed": outbox.get("failed", 0),
            "tickets": tickets,
            "events": events,
        }

    def close(self) -> None:
        self.engine.dispose()


def wait_drained(
    probe: DbProbe,
    sink: TimedSink,
    mails: int,
    *,
    timeout: float = 1800,
    interval: float = 0.2,
) -> tuple[float, float, dict[str, int]]:
    """Wait until mails are final and the sink holds every sent mail.

    Returns (when every mail was committed, when the sink had the last
    notification, the counts of the run); times are time.monotonic().
    """
    deadline = time.monotonic() + timeout
    committed_at = 0.0
    while time.monotonic() < deadline:
        counts = probe.counts()
        final = counts["mails_done"] + counts["mails_ignored"]
        final += counts["mails_quarantined"]
        if final >= mails and not committed_at:
            committed_at = probe.monotonic_of_last_handled()
        if (
            committed_at
            and counts["outbox_pending"] == 0
            and sink.count() >= counts["outbox_sent"]
        ):
            arrivals = sink.arrivals()
            last = arrivals[-1][0] if arrivals else committed_at
            return committed_at, last, counts
        time.sleep(interval)  # polling the database, with a deadline
    raise TimeoutError(f"not drained in {timeout} s: {probe.counts()}")
