"""Several maild instances on one PostgreSQL and one mailbox (issue 18).

Three real daemons share a real PostgreSQL, the real Dovecot and an SMTP
sink; mail arrives over IMAP and SMTP at once; the instance holding the imap
and sla roles is SIGKILLed midway, then the next holder is SIGSTOPped past its
lease and resumed. Every mail must give exactly one ticket, every SLA timer
fire once, every notification be sent (copies only from the kill, with the
same Message-ID). The counts are printed (`-s`). 60 mails run in CI;
`-m slow` runs the full 1,000 (MAILD_SEVERAL_MAILS sets either size).

Also: a rolling restart loses nothing; a second instance on SQLite is refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from maild.adapters.database.engine import upgrade
from maild.adapters.database.models import EventRow
from tests.support.cluster import TIMERS, Cluster
from tests.support.crash import Database, HoldingSink, kill, new_mail
from tests.support.daemon import ROOT, is_listening, run_maild, write_config
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def cluster(
    tmp_path: Path, fresh_postgres_db: str, clean_mailbox: DovecotServer
) -> Iterator[tuple[Cluster, HoldingSink]]:
    upgrade(fresh_postgres_db)
    (tmp_path / "shared").mkdir()
    sink = HoldingSink()
    sink.start()
    handle = Cluster(tmp_path, fresh_postgres_db, clean_mailbox, sink.port)
    try:
        yield handle, sink
    finally:
        handle.stop_all()
        sink.stop()


@pytest.fixture
def db(cluster: tuple[Cluster, HoldingSink]) -> Iterator[Database]:
    """The test's own view of the shared database, closed however it ends."""
    database = Database(cluster[0].url)
    yield database
    database.close()


def _size() -> int:
    return int(os.environ.get("MAILD_SEVERAL_MAILS", "60"))


def test_three_instances_survive_a_kill_and_a_pause(
    cluster: tuple[Cluster, HoldingSink], db: Database
) -> None:
    _kill_and_pause(*cluster, db, _size())


@pytest.mark.slow
def test_three_instances_survive_a_kill_and_a_pause_with_1000_mails(
    cluster: tuple[Cluster, HoldingSink], db: Database
) -> None:
    _kill_and_pause(*cluster, db, int(os.environ.get("MAILD_SEVERAL_MAILS", "1000")))


def _kill_and_pause(
    cluster: Cluster, sink: HoldingSink, db: Database, size: int
) -> None:
    for name in ("a", "b", "c"):
        cluster.start(name)
    assert cluster.holder("imap") == "a"  # the first one took the roles
    assert cluster.holder("sla") == "a"
    mails = [new_mail(n) for n in range(size)]
    producers = [
        threading.Thread(
            target=lambda: [cluster.server.append(HELPDESK, m) for m in mails[0::2]]
        ),
        threading.Thread(target=_send_all, args=(cluster, mails[1::2])),
    ]
    for producer in producers:
        producer.start()
    wait_until(lambda: len(db.tickets()) >= size // 3, 300, "a third of the mail")
    kill(cluster.daemons["a"])  # the whole process group, sender included
    killed_at = time.monotonic()
    paused = wait_until(lambda: cluster.holder("imap"), 30, "a new imap holder")
    took_over = time.monotonic() - killed_at
    process = cluster.daemons[str(paused)].process
    assert process is not None
    pid = process.pid
    os.kill(pid, signal.SIGSTOP)  # the daemon, not its sender: paused mid-role
    wait_until(
        lambda: cluster.holder("imap") not in (None, paused), 30, "the third one"
    )
    os.kill(pid, signal.SIGCONT)  # it must not act on the lease it had
    for producer in producers:
        producer.join(600)
    wait_until(lambda: _handled(db) == size, 600, "every mail handled")
    wait_until(lambda: _fired(db) == len(TIMERS) * size, 300, "every timer")
    wait_until(lambda: _all_sent(db), 300, "every notification sent")
    paused_log = cluster.daemons[str(paused)].log.read_text()
    tickets = db.tickets()
    timers = _timer_counts(db)
    outbox = db.outbox()
    received = sink.message_ids()
    copies = {mid: n for mid, n in received.items() if n > 1}
    print(  # the counts the issue asks for
        f"\nseveral instances: {size} mails, {len(db.mails())} records, "
        f"{len(tickets)} tickets, {sum(timers.values())} timers fired "
        f"(max {max(timers.values())} per ticket and timer), {len(outbox)} "
        f"notifications, {sum(received.values())} received, {len(copies)} copies; "
        f"imap taken over {took_over:.1f} s after the kill"
    )
    assert len(db.mails()) == size
    assert len(tickets) == size
    assert len({m.ticket_id for m in db.mails()}) == size
    assert set(timers.values()) == {1}
    assert {row.message_id for row in outbox} <= set(received)
    assert set(copies) <= {row.message_id for row in outbox}
    assert len(copies) <= 50  # at most one round of the killed sender
    assert "role imap given up" in paused_log
    assert "role imap taken" not in paused_log.split("role imap given up")[-1]


def test_a_rolling_restart_loses_nothing(
    cluster: tuple[Cluster, HoldingSink], db: Database
) -> None:
    cluster_, _sink = cluster
    size = 30
    mails = [new_mail(n) for n in range(size)]
    cluster_.start("a")
    cluster_.start("b")
    sender = threading.Thread(target=_send_all, args=(cluster_, mails[1::2]))
    sender.start()
    for n, mail in enumerate(mails[0::2]):
        cluster_.server.append(HELPDESK, mail)
        if n == 3:
            assert cluster_.daemons["a"].stop() == 0
            cluster_.start("a")
        if n == 9:
            assert cluster_.daemons["b"].stop() == 0
            cluster_.start("b")
    sender.join(300)
    wait_until(lambda: _handled(db) == size, 300, "every mail handled")
    assert len(db.tickets()) == size
    status = cluster_.daemons["a"].maild("status", "--json")
    roles = Counter(r for i in status["instances"] for r in i["roles"])
    assert roles == {"imap": 1, "sla": 1, "sender": 2, "smtp_intake": 2}


def test_a_second_instance_on_sqlite_is_refused(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, sink_port=None)
    first = _run_on_sqlite(config, port, tmp_path)
    try:
        second = run_maild(config, "run")
        assert second.returncode == 1
        assert "SQLite is one instance" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # its lock goes with it
        first.wait(30)
    after_the_kill = _run_on_sqlite(config, port, tmp_path)
    after_the_kill.send_signal(signal.SIGTERM)
    assert after_the_kill.wait(30) == 0


def _run_on_sqlite(config: Path, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = tmp_path / "maild.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    wait_until(lambda: is_listening(process, port, log), 60, "the intake")
    return process


def _send_all(cluster: Cluster, mails: list[bytes]) -> None:
    for n, mail in enumerate(mails):
        cluster.send(mail, n)


def _handled(db: Database) -> int:
    return sum(1 for m in db.mails() if m.state == "done")


def _timer_counts(db: Database) -> Counter[tuple[int, str]]:
    with Session(db.engine) as session:
        rows = session.execute(
            select(EventRow.ticket_id, EventRow.text).where(
                EventRow.actor == "maild", EventRow.text.in_(TIMERS)
            )
        )
        return Counter((ticket, timer) for ticket, timer in rows)


def _fired(db: Database) -> int:
    return len(_timer_counts(db))


def _all_sent(db: Database) -> bool:
    rows = db.outbox()
    return bool(rows) and all(row.state == "sent" for row in rows)
