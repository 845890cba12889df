"""Due-timer scan cost: 1,000 tickets against 1,000,000, a few hundred due.

    python -m bench.sla_scan [--tickets 1000000] [--due 300] [--postgres-url URL]

Builds a database of N tickets whose SLA timers are almost all in the future
(a few hundred due now), then times (1) the scan alone, the five indexed
queries `FireTimers` runs at every tick, and (2) a whole `check(now)` that fires
the due timers and queues their notices. The scan should cost about the same
at any N: it follows the number of due tickets, not the number of tickets.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from maild.adapters.database.models import TicketRow
from maild.app.fire_timers import BATCH
from maild.config import load_settings
from maild.domain import Timer
from maild.runtime import daemon
from tests.support.daemon import write_config

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, business hours
CHUNK = 20_000


def _rows(count: int, due: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    due_ids = set(rng.sample(range(count), due))
    rows = []
    for n in range(count):
        created = NOW - timedelta(minutes=rng.randint(0, 60))
        later = NOW + timedelta(hours=rng.randint(1, 500))
        is_due = n in due_ids
        rows.append(
            {
                "number": f"I{n:06d}_{n % 10000:04d}",
                "token": f"{n:024x}",
                "ticket_type": "incident",
                "status": "new",
                "subject": "Bench",
                "description": "",
                "requester_name": "",
                "requester_address": f"user{n % 5000}@example.com",
                "beneficiary_name": "",
                "beneficiary_address": f"user{n % 5000}@example.com",
                "application": "",
                "urgency": "medium",
                "phone": "",
                "owner": None,
                "created_at": created,
                "callback_due_at": NOW - timedelta(minutes=1) if is_due else later,
                "reminder_at": NOW - timedelta(minutes=5) if is_due else later,
                "breach_at": NOW - timedelta(minutes=1) if is_due else later,
                "reannounce_at": later,
                "pdr_retry_at": None,
                "auto_close_at": None,
            }
        )
    return rows


def _populate(parts: daemon.Parts, count: int, due: int) -> float:
    start = time.perf_counter()
    rows = _rows(count, due, seed=count)
    with parts.store.transaction() as tx:
        for first in range(0, len(rows), CHUNK):
            tx.session.execute(insert(TicketRow), rows[first : first + CHUNK])
    return time.perf_counter() - start


def _scan_seconds(parts: daemon.Parts, repeat: int = 20) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        for timer in Timer:
            parts.store.due_tickets(timer, NOW, BATCH)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def measure(count: int, due: int, database_url: str = "") -> dict[str, float]:
    """Build a database of count tickets and time the scan and one check."""
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
        config, _ = write_config(
            Path(tmp), sink_port=None, language="en", database_url=database_url
        )
        settings = load_settings(config)
        if database_url:
            from maild.adapters.database.engine import upgrade

            upgrade(database_url)
        parts = daemon.build(settings, lambda: NOW, parse_workers=1)
        try:
            populate = _populate(parts, count, due)
            scan = _scan_seconds(parts)
            start = time.perf_counter()
            fired = parts.service.check_sla(NOW)
            check = time.perf_counter() - start
        finally:
            parts.close()
    return {
        "tickets": count,
        "due": due,
        "populate_s": round(populate, 2),
        "scan_ms": round(scan * 1000, 3),
        "check_s": round(check, 3),
        "fired": fired,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--postgres-url", default="")
    args = parser.parse_args()
    results = [
        measure(1_000, args.due, args.postgres_url),
        measure(args.tickets, args.due, args.postgres_url),
    ]
    print(f"{'tickets':>10} {'due':>5} {'scan ms':>9} {'check s':>8} {'fired':>6}")
    for r in results:
        print(
            f"{r['tickets']:>10} {r['due']:>5} {r['scan_ms']:>9} "
            f"{r['check_s']:>8} {r['fired']:>6}"
        )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "sla_scan.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
