"""`maild purge` SIGKILLed midway, then run again (issue 20): the same end state
as one uninterrupted run. A real subprocess on a SQLite file filled as the
bench fills it, every closed ticket expired, a blob file per mail and
attachment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from bench.purge import _expire, _remaining
from bench.scale import fill
from maild.adapters.database.models import EventRow, TicketRow
from tests.support.daemon import ROOT, run_maild, write_config
from tests.support.waiting import wait_until

TICKETS = 3000


def purged_events(url: str) -> tuple[int, int]:
    """(purged events, tickets with more than one) on the database at url."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(
                select(func.count()).where(EventRow.kind == "purged")
            ).scalar_one()
            twice = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT ticket_id FROM events "
                    "WHERE kind = 'purged' GROUP BY ticket_id HAVING count(*) > 1)"
                )
            ).scalar_one()
            return int(total), int(twice)
    finally:
        engine.dispose()


def test_a_killed_purge_finishes_at_the_next_run(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    url = f"sqlite:///{tmp_path / 'maild.db'}"
    fill(url, TICKETS, seed=7)
    files = _expire(url, tmp_path / "var")
    engine = create_engine(url)
    with engine.connect() as conn:
        closed = conn.execute(
            select(func.count()).where(TicketRow.status == "closed")
        ).scalar_one()
    engine.dispose()
    blobs = tmp_path / "var" / "blobs"
    assert sum(1 for p in blobs.rglob("*") if p.is_file()) == files

    purge = subprocess.Popen(
        [sys.executable, "-m", "maild", "--config", str(config), "purge", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: purged_events(url)[0] >= 100, what="a few batches purged")
    purge.send_signal(signal.SIGKILL)
    purge.communicate(timeout=30)
    midway = purged_events(url)[0]
    assert 0 < midway < closed  # killed in the middle

    done = run_maild(config, "purge", "--json")

    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["mails"] > 0
    assert purged_events(url) == (closed, 0)  # each ticket once, none missed
    assert _remaining(url) == {
        "mails_with_bytes": 0, "attachments": 0, "blobs_to_sweep": 0
    }  # fmt: skip
    left = {p.name for p in blobs.rglob("*") if p.is_file()}
    assert left == named(url)  # the open tickets' files, and no other
    assert 0 < len(left) < files


def named(url: str) -> set[str]:
    """The blobs some row still names."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    text(
                        "SELECT blob_sha256 FROM mails WHERE blob_sha256 != '' "
                        "UNION SELECT sha256 FROM attachments"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
