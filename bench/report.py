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
    rows = [
        (
            name,
            f"to confirmation, {run['count']} mails at {run['rate']:g}/s",
            f"p50 {run['p50_ms']} ms  p95 {run['p95_ms']} ms  p99 {run['p99_ms']} ms"
            f"  max {run['max_ms']} ms",
        ),
    ]
    for key, label in (
        ("under_1mb", "the same, mails under 1 MB only"),
        ("dovecot_idle_floor", "bare IDLE client: APPEND -> EXISTS (Dovecot)"),
    ):
        floor = run.get(key)
        if floor and floor.get("count"):
            rows.append(
                (
                    name,
                    label if key != "under_1mb" else f"{label} ({floor['count']})",
                    f"p50 {floor['p50_ms']} ms  p95 {floor['p95_ms']} ms"
                    + (f"  p99 {floor['p99_ms']} ms" if key == "under_1mb" else "")
                    + f"  max {floor['max_ms']} ms",
                )
            )
    accepted = run.get("data_to_250")
    if accepted and accepted.get("count"):
        rows.append(
            (
                name,
                "DATA -> 250 (committed)",
                f"p50 {accepted['p50_ms']} ms  p95 {accepted['p95_ms']} ms"
                f"  max {accepted['max_ms']} ms",
            )
        )
    return rows


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
