"""Bench results: the printed table and bench/out/results.json. Does file I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]


def _throughput_rows(name: str, run: dict[str, Any], floor: float) -> list[Row]:
    rss = run["rss"]
    share = f"{100 * run['mails_per_s'] / floor:.0f} % of the floor" if floor else ""
    counts = run["counts"]
    return [
        (
            name,
            "mails/s, daemon start -> last notification",
            f"{run['mails_per_s']:.1f}  "
            f"({run['mails']} mails in {run['seconds']:.1f} s)",
        ),
        (name, "share of the floor", share),
        (
            name,
            "mails/s once the intake is up",
            f"{run['drain_mails_per_s']:.1f}  (start-up {run['startup_s']:.1f} s)",
        ),
        (
            name,
            "all committed after / notifications lag",
            f"{run['committed_s']:.1f} s / "
            f"{run['last_notification_after_commit_s']:.1f} s",
        ),
        (
            name,
            "tickets / events / notifications sent",
            f"{counts['tickets']} / {counts['events']} / {counts['outbox_sent']}",
        ),
        (
            name,
            "peak RSS daemon / largest child",
            f"{rss['daemon_mib']:.0f} MiB / {rss['children_max_mib']:.0f} MiB"
            f"  ({len(rss['children'])} children)",
        ),
        (
            name,
            "CPU daemon / parse workers / sender (s)",
            f"{rss.get('daemon_cpu_s', 0):.1f}"
            f" / {rss.get('children_cpu_s', 0) - rss.get('sender_cpu_s', 0):.1f}"
            f" / {rss.get('sender_cpu_s', 0):.1f}"
            f"  ({run['seconds']:.1f} s of wall time)",
        ),
        (
            name,
            "tickets list --status new --json",
            f"{run['list_new']['median_s']:.2f} s  ({run['list_new']['rows']} rows)",
        ),
    ]


def _latency_rows(name: str, run: dict[str, Any]) -> list[Row]:
    if not run.get("count"):
        return [(name, "confirmations", "none")]
    small = run.get("under_1mb") or {}
    parts = (
        (run, f"to confirmation, {run['count']} mails at {run['rate']:g}/s", True),
        (small, f"the same, mails under 1 MB only ({small.get('count')})", True),
        (
            run.get("dovecot_idle_floor") or {},
            "bare IDLE client: APPEND -> EXISTS (Dovecot)",
            False,
        ),
        (run.get("data_to_250") or {}, "DATA -> 250 (committed)", False),
    )
    return [
        (name, label, _spread(spread, with_p99=with_p99))
        for spread, label, with_p99 in parts
        if spread.get("count")
    ]


def _spread(p: dict[str, Any], *, with_p99: bool) -> str:
    """p50, p95 (p99) and max of a percentiles() result."""
    p99 = f"  p99 {p['p99_ms']} ms" if with_p99 else ""
    return f"p50 {p['p50_ms']} ms  p95 {p['p95_ms']} ms{p99}  max {p['max_ms']} ms"


def table(results: dict[str, Any]) -> list[Row]:
    """The rows of the summary table."""
    rows: list[Row] = []
    floor = results.get("floor", {}).get("mails_per_s", 0.0)
    if "floor" in results:
        f = results["floor"]
        rows.append(
            (
                "floor",
                "fetch + email parse + SQLite insert",
                f"{f['mails_per_s']:.1f} mails/s  ({f['seconds']:.1f} s)",
            )
        )
    for db, run in results.get("throughput", {}).items():
        rows += _throughput_rows(f"throughput {db}", run, floor)
    for db, run in results.get("scale", {}).items():
        rows.append(
            (
                f"scale {db}",
                "fill",
                f"{run['fill']['tickets']:,} tickets, {run['fill']['rows']:,} rows"
                f" in {run['fill']['fill_seconds']:.0f} s",
            )
        )
        if "empty" in run:  # results written before the back-to-back run
            rows.append(
                (
                    f"scale {db}",
                    "empty database just before -> filled (mails/s)",
                    f"{run['empty']['mails_per_s']:.1f} -> "
                    f"{run['run']['mails_per_s']:.1f}  ({100 * run['change']:+.1f} %)",
                )
            )
        rows += _throughput_rows(f"scale {db}", run["run"], floor)
    for path, run in results.get("latency", {}).items():
        rows += _latency_rows(f"latency {path}", run)
    return rows


def render(rows: list[Row]) -> str:
    """Align rows in three columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(2)] if rows else [0, 0]
    lines = [f"{'phase'.ljust(widths[0])}  {'measure'.ljust(widths[1])}  value"]
    lines.append("-" * (widths[0] + widths[1] + 40))
    previous = ""
    for phase, measure, value in rows:
        shown = phase if phase != previous else ""
        previous = phase
        lines.append(f"{shown.ljust(widths[0])}  {measure.ljust(widths[1])}  {value}")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
