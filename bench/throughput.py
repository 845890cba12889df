"""Throughput phase: N mails already in the inbox, then the daemon. I/O.

The corpus is APPENDed to the helpdesk inbox before maild starts; the clock
runs from the start of the daemon process to the moment the SMTP sink holds
the last notification, once every mail is committed (ticket, event, ignored
or quarantined) and no outbox row is pending. Also timed: the `maild tickets
list --status new --json` command on the database the run left.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import BenchMail
from bench.harness import DbProbe, TimedSink, imap_extra, start_maild, wait_drained
from tests.support.daemon import run_maild
from tests.support.dovecot import HELPDESK, DovecotServer


def fill_inbox(server: DovecotServer, mails: list[BenchMail]) -> float:
    """Empty the helpdesk mailbox and APPEND mails in order; return seconds."""
    server.fresh_mailbox(HELPDESK)
    started = time.perf_counter()
    with server.connect(HELPDESK) as client:
        for mail in mails:
            client.append("INBOX", mail.raw)
    return time.perf_counter() - started


def run_throughput(
    directory: Path,
    server: DovecotServer,
    mails: list[BenchMail],
    *,
    database_url: str,
    profile_dir: Path | None = None,
    is_timers: bool = False,
    before_start: Callable[[Path], None] | None = None,
    list_runs: int = 3,
    since: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Start maild on an inbox already holding mails; time until drained.

    since: the highest ids of a database filled before (the scale phase).
    """
    sink = TimedSink()
    sink.start()
    try:
        daemon = start_maild(
            directory,
            sink.port,
            database_url=database_url,
            extra=imap_extra(server),
            profile_dir=profile_dir,
            is_timers=is_timers,
            before_start=before_start,
        )
        probe = DbProbe(database_url, since)
        try:
            committed, last, counts = wait_drained(probe, sink, len(mails))
        finally:
            peaks = daemon.stop()
            probe.close()
    finally:
        sink.stop()
    left = server.list_uids(HELPDESK, "INBOX")
    total = last - daemon.started_at
    result: dict[str, Any] = {
        "mails": len(mails),
        "seconds": round(total, 2),
        "mails_per_s": round(len(mails) / total, 1),
        "startup_s": round(daemon.ready_at - daemon.started_at, 2),
        "drain_mails_per_s": round(len(mails) / (last - daemon.ready_at), 1),
        "committed_s": round(committed - daemon.started_at, 2),
        "last_notification_after_commit_s": round(last - committed, 2),
        "notifications": counts["outbox_sent"],
        "counts": counts,
        "left_in_inbox": len(left),
        "rss": peaks.as_json(),
        "expected_tickets": sum(m.kind == "new" for m in mails),
    }
    result["list_new"] = time_list(daemon.config, list_runs)
    return result


def time_list(config: Path, runs: int) -> dict[str, Any]:
    """Time `maild tickets list --status new --json`; median of runs."""
    seconds, rows, size = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        done = run_maild(config, "tickets", "list", "--status", "new", "--json")
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"tickets list failed: {done.stderr}")
        rows, size = done.stdout.count('"number":'), len(done.stdout)
    return {
        "median_s": round(statistics.median(seconds), 2),
        "runs_s": [round(s, 2) for s in seconds],
        "rows": rows,
        "json_bytes": size,
    }
