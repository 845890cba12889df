"""Profile summary of a throughput run: where the time goes. Reads files, runs parsers.

Reads what `bench.profiled` wrote (one cProfile file per thread, sql.json)
and says: the time of each step of handling a mail, per mail; the hottest
functions; every SQL statement with its count per mail, its time and, on
SQLite, its query plan (a SCAN of a table is flagged); and the cost of a
parse in the worker pool against the same parse in-process.
"""

from __future__ import annotations

import json
import pstats
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.corpus import BenchMail

# (label, file suffix or "~" for built-ins, function name)
STEPS = (
    ("handle one mail (service)", "maild/service.py", "handle"),
    ("  register + attempt commit", "maild/adapters/store.py", "register_mail"),
    ("  parse in worker (round trip)", "maild/adapters/parse_worker.py", "parse"),
    ("  classify (+ thread lookups)", "maild/core/classify.py", "classify"),
    ("  open ticket transaction", "maild/service.py", "_open_ticket"),
    ("  reply transaction", "maild/service.py", "_reply"),
    ("    queue notifications", "maild/outbound.py", "queue"),
    ("      answer caps", "maild/outbound.py", "_within_caps"),
    ("      render templates", "maild/adapters/templates.py", "render"),
    ("      build MIME message", "maild/adapters/message.py", "build_message"),
    ("    store attachments", "maild/adapters/store.py", "add_attachments"),
    ("    finish mail", "maild/adapters/store.py", "finish_mail"),
    ("blob writes (fsync each)", "maild/adapters/blobs.py", "put"),
    ("ORM flush", "sqlalchemy/orm/session.py", "flush"),
    (
        "sqlite3 commit (fsync)",
        "~",
        "<method 'commit' of 'sqlite3.Connection' objects>",
    ),
    ("IMAP fetch", "imapclient/imapclient.py", "fetch"),
    ("IMAP move", "imapclient/imapclient.py", "move"),
    ("outbox deliver_due", "maild/adapters/outbox.py", "deliver_due"),
    ("  outbox SMTP send", "maild/adapters/mailer.py", "send"),
    ("  outbox mark sent", "maild/adapters/outbox.py", "_mark_sent"),
)


def _load(directory: Path) -> dict[str, pstats.Stats]:
    found = {}
    for path in sorted(directory.glob("*.prof")):
        found[path.stem] = pstats.Stats(str(path))
    return found


def _step(stats: pstats.Stats, suffix: str, name: str) -> tuple[int, float]:
    calls, seconds = 0, 0.0
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if function != name:
            continue
        if suffix != "~" and not filename.endswith(suffix):
            continue
        calls += row[1]
        seconds += row[3]
    return calls, seconds


def _steps(profiles: dict[str, pstats.Stats], mails: int) -> list[dict[str, Any]]:
    rows = []
    for label, suffix, name in STEPS:
        calls, seconds = 0, 0.0
        for stats in profiles.values():
            c, s = _step(stats, suffix, name)
            calls, seconds = calls + c, seconds + s
        rows.append(
            {
                "step": label,
                "calls": calls,
                "seconds": round(seconds, 3),
                "ms_per_mail": round(1000 * seconds / mails, 2),
            }
        )
    return rows


def _hottest(profiles: dict[str, pstats.Stats], count: int) -> list[str]:
    merged = None
    for stats in profiles.values():
        merged = stats if merged is None else merged.add(stats)
    if merged is None:
        return []
    rows = sorted(merged.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    lines = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _) in rows[:count]:
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        lines.append(
            f"{tottime:8.3f} {cumtime:8.3f} {calls:9d}  {where}:{line}({function})"
        )
    return lines


def _plan(db: sqlite3.Connection, statement: str, example: Any) -> str:
    if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
        return ""
    params = (
        example[0]
        if isinstance(example, list)
        and example
        and isinstance(example[0], (list, tuple, dict))
        else example
    )
    try:
        rows = db.execute(f"EXPLAIN QUERY PLAN {statement}", params or ()).fetchall()
    except sqlite3.Error as exc:
        return f"(no plan: {exc})"
    return " | ".join(str(row[-1]) for row in rows)


def _sql(directory: Path, database: Path, mails: int) -> list[dict[str, Any]]:
    path = directory / "sql.json"
    if not path.exists():
        return []
    statements = json.loads(path.read_text())
    db = sqlite3.connect(database) if database.exists() else None
    rows = []
    for statement, entry in sorted(statements.items(), key=lambda i: -i[1]["seconds"]):
        plan = _plan(db, statement, entry["example"]) if db is not None else ""
        is_scan = any(
            part.strip().startswith("SCAN") and "INDEX" not in part
            for part in plan.split("|")
        )
        rows.append(
            {
                "sql": " ".join(statement.split())[:300],
                "count": entry["count"],
                "per_mail": round(entry["count"] / mails, 2),
                "seconds": round(entry["seconds"], 3),
                "plan": plan,
                "full_scan": is_scan,
            }
        )
    if db is not None:
        db.close()
    return rows


def _parse_cost(mails: list[BenchMail], sample: int = 200) -> dict[str, Any]:
    """ms per mail: parse_mail in-process, and through a one-worker ParserPool."""
    from maild.adapters.intake.parse_worker import ParserPool
    from maild.core.parse import ParseLimits, parse_mail

    chosen = mails[:sample]
    started = time.perf_counter()
    for mail in chosen:
        parse_mail(mail.raw, None, (), ParseLimits())
    in_process = time.perf_counter() - started
    with ParserPool(ParseLimits(), parse_seconds=30, workers=1) as pool:
        pool.parse(chosen[0].raw)  # warm the worker's imports and caches
        started = time.perf_counter()
        for mail in chosen:
            pool.parse(mail.raw)
        pooled = time.perf_counter() - started
    return {
        "mails": len(chosen),
        "in_process_ms": round(1000 * in_process / len(chosen), 2),
        "worker_round_trip_ms": round(1000 * pooled / len(chosen), 2),
        "round_trip_overhead_ms": round(1000 * (pooled - in_process) / len(chosen), 2),
    }


def _timer_steps(directory: Path, mails: int) -> list[dict[str, Any]]:
    path = directory / "timers.json"
    if not path.exists():
        return []
    timers = json.loads(path.read_text())
    return [
        {"step": label, "calls": calls, "seconds": round(seconds, 3),
         "ms_per_mail": round(1000 * seconds / mails, 2)}
        for label, (calls, seconds) in timers.items()
    ]  # fmt: skip


def _step_lines(title: str, steps: list[dict[str, Any]]) -> list[str]:
    lines = ["", title]
    lines += [
        f"  {s['step']:34} {s['calls']:7d} calls {s['seconds']:8.2f} s "
        f"{s['ms_per_mail']:8.2f} ms/mail"
        for s in steps
    ]
    return lines


def summarise(
    directory: Path, database: Path, corpus: list[BenchMail]
) -> dict[str, Any]:
    """Write directory/summary.txt and return the figures for results.json.

    directory holds timers/ (perf_counter steps, SQL) and cprofile/ (.prof
    files); database is the SQLite file of the timers run, for query plans.
    """
    mails = len(corpus)
    timers = _timer_steps(directory / "timers", mails)
    profiles = _load(directory / "cprofile")
    steps = _steps(profiles, mails)
    sql = _sql(directory / "timers", database, mails)
    parse = _parse_cost(corpus)
    lines = [f"where the time goes: throughput runs of {mails} mails on SQLite"]
    lines += _step_lines("steps, perf_counter (wall time, all threads):", timers)
    lines += _step_lines(
        "steps, cProfile (inflated by the profiler: compare shares):", steps
    )
    lines += [
        "",
        f"parse cost, {parse['mails']} mails: in-process {parse['in_process_ms']}"
        f" ms/mail, via the worker pool {parse['worker_round_trip_ms']} ms/mail",
        "",
        "SQL statements of the timers run (count per mail, total s, plan):",
    ]
    for row in sql:
        flag = "  <-- full scan" if row["full_scan"] else ""
        lines.append(
            f"  {row['per_mail']:6.2f}/mail {row['seconds']:7.3f} s  "
            f"{row['sql'][:160]}{flag}"
        )
        if row["plan"]:
            lines.append(f"      plan: {row['plan']}")
    lines += ["", "hottest functions, cProfile (tottime, cumtime, calls):"]
    lines += ["  " + line for line in _hottest(profiles, 40)]
    (directory / "summary.txt").write_text("\n".join(lines) + "\n")
    return {"timers": timers, "cprofile_steps": steps, "parse": parse,
            "sql": sql[:40]}  # fmt: skip
