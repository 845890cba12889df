"""Purge bench: expired tickets purged while mail keeps arriving. I/O.

`python -m bench.purge [--tickets 100000] [--rate 5] [--baseline-seconds 20]`

A SQLite database is filled as the scale phase fills it (bench/scale.py:
each ticket with its source mail, events, sent mail, answer, 10 % with an
attachment), then every closed ticket is made to have closed 400 days ago
and each mail and attachment names a blob file of its own (1 KiB, written
under the storage folder): all due for retention. The real daemon is started
on it (SMTP intake, the bench's sink as relay). Mails are sent to its SMTP
intake at `--rate` a second, first for `--baseline-seconds` with no purge,
then for as long as the purge runs: the purge of the daemon's daily job
(maild/runtime/retention.py, batches with a pause as long as the batch) run
by this process on the same database, as `maild purge` would run beside the
daemon. Each mail is timed from DATA to its confirmation at the sink.

Goal (README, Benchmarks): the confirmation p95 during the purge stays under
LATENCY_GOAL_P95_MS, the same goal as without a purge ("answers in about a
second"), and the purge leaves no expired mail, attachment or blob behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text, update

from bench import corpus
from bench.harness import TimedSink, start_maild
from bench.latency import _confirmed, _submit, _wait_all, percentiles
from bench.scale import fill
from maild.adapters.database.models import AttachmentRow, MailRow, TicketRow
from maild.adapters.database.store import open_store
from maild.app.purge import Purge
from maild.config import load_settings
from maild.core.numbering import ticket_day
from maild.runtime.retention import yielding_pause

LATENCY_GOAL_P95_MS = 2000
BLOB_BYTES = 1024
OUT = Path(__file__).resolve().parent / "out"


def _expire(database_url: str, storage: Path) -> int:
    """Close every closed ticket 400 days ago; give each mail and attachment a
    blob file of its own. Return the number of blob files written."""
    engine = create_engine(database_url)
    old = datetime.now(UTC) - timedelta(days=400)
    blobs = storage / "blobs"
    written = 0
    with engine.begin() as conn:
        conn.execute(
            update(TicketRow).where(TicketRow.status == "closed").values(closed_at=old)
        )
        for table, key in ((MailRow, "blob_sha256"), (AttachmentRow, "sha256")):
            ids = list(conn.execute(select(table.id)).scalars())
            for row_id in ids:
                data = f"{table.__tablename__} {row_id} ".encode() * (BLOB_BYTES // 16)
                sha = hashlib.sha256(data).hexdigest()
                path = blobs / sha[:2] / sha[2:4] / sha
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                written += 1
                conn.execute(update(table).where(table.id == row_id).values({key: sha}))
    engine.dispose()
    return written


def _remaining(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        expired = select(TicketRow.id).where(TicketRow.status == "closed")
        found = {
            "mails_with_bytes": conn.execute(
                select(func.count())
                .select_from(MailRow)
                .where(MailRow.ticket_id.in_(expired), MailRow.blob_sha256 != "")
            ).scalar_one(),
            "attachments": conn.execute(
                select(func.count())
                .select_from(AttachmentRow)
                .where(AttachmentRow.ticket_id.in_(expired))
            ).scalar_one(),
            "blobs_to_sweep": conn.execute(text("SELECT count(*) FROM blob_sweep"))
            .scalar_one(),
        }  # fmt: skip
    engine.dispose()
    return {k: int(v) for k, v in found.items()}


def _send(port: int, mails: list[corpus.BenchMail], rate: float,
          until: threading.Event | None) -> dict[str, float]:  # fmt: skip
    """Send mails at rate (stopping early once until is set); return DATA times."""
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def one(mail: corpus.BenchMail) -> None:
        before, _ = _submit(port, mail)
        with lock:
            sent[mail.sender] = before

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for index, mail in enumerate(mails):
            if until is not None and until.is_set():
                break
            pause = started + index / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the sender, not synchronising
            futures.append(pool.submit(one, mail))
        for future in futures:
            future.result()
    return sent


def run(tickets: int, rate: float, baseline_seconds: float, seed: int,
        work: Path) -> dict[str, Any]:  # fmt: skip
    """Fill, start maild, measure the baseline, then purge while mail arrives."""
    url = f"sqlite:///{work / 'maild.db'}"
    filled = fill(url, tickets, seed=seed)
    blobs = _expire(url, work / "var")
    day = ticket_day(datetime.now(UTC), "Europe/Paris")
    mails = corpus.generate(
        int(rate * (baseline_seconds + 3600)) + 1,
        seed=seed, day=day, replies=False, prefix="p",
    )  # fmt: skip
    sink = TimedSink()
    sink.start()
    daemon = start_maild(work, sink.port, database_url=url)
    try:
        _submit(daemon.intake_port, mails[0])
        _wait_all(sink, {mails[0].sender}, 120)
        count = max(1, int(rate * baseline_seconds))
        base_sent = _send(daemon.intake_port, mails[1 : 1 + count], rate, None)
        settings = load_settings(daemon.config)
        store = open_store(settings, migrate=False)
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def purge() -> None:
            started = time.monotonic()
            purged = Purge(
                settings.retention.policy, store, between_batches=yielding_pause()
            ).run(datetime.now(UTC))
            outcome.update(
                seconds=round(time.monotonic() - started, 1),
                mails=purged.mails,
                attachments=purged.attachments,
                blobs=purged.blobs,
            )
            done.set()

        purging = threading.Thread(target=purge)
        purging.start()
        during_sent = _send(daemon.intake_port, mails[1 + count :], rate, done)
        purging.join()
        store.close()
        _wait_all(sink, set(base_sent) | set(during_sent), 120)
    finally:
        daemon.stop()
        sink.stop()
    seen = _confirmed(sink, {**base_sent, **during_sent})
    during = percentiles([seen[s] - during_sent[s] for s in during_sent if s in seen])
    result = {
        "tickets": tickets,
        "fill": filled,
        "blob_files": blobs,
        "rate": rate,
        "purge": outcome,
        "tickets_per_second": round(tickets / max(outcome["seconds"], 0.1)),
        "baseline": percentiles(
            [seen[s] - base_sent[s] for s in base_sent if s in seen]
        ),
        "during_purge": during,
        "remaining": _remaining(url),
        "goal_p95_ms": LATENCY_GOAL_P95_MS,
    }
    result["goal_met"] = during.get("p95_ms", 0) <= LATENCY_GOAL_P95_MS and not any(
        result["remaining"].values()
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.purge")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5.0, help="mails a second")
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-purge-bench-") as work:
        result = run(args.tickets, args.rate, args.baseline_seconds, args.seed,
                     Path(work))  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "purge.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
