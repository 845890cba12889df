"""`python -m bench.failover`: several instances on one PostgreSQL. I/O.

Two figures (issue 18), on a private PostgreSQL, the private Dovecot and an
SMTP sink, with maild's default lease (`database.lease_seconds`, 6 s) unless
--lease says otherwise:

- failover: three instances; the one holding the imap role is SIGKILLed (its
  whole process group) and a mail APPENDed at that moment; the time from the
  kill to that mail's ticket committed by another instance. Repeated --kills
  times (the killed one comes back as a standby). Goal: under 10 s.
- throughput: --mails mails handed to the SMTP intakes (the role every
  instance runs) by 4 clients a instance at once, with 1, 2 and 3 instances
  on a fresh database: mails a second from the first send to the last
  ticket committed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from maild.adapters.database.engine import upgrade
from tests.support.cluster import Cluster
from tests.support.crash import Database, HoldingSink, kill, new_mail
from tests.support.dovecot import HELPDESK, DovecotServer, start_dovecot, stop_dovecot
from tests.support.postgres import PostgresServer, _start, _stop
from tests.support.waiting import wait_until


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--lease", type=int, default=6, help="lease_seconds")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="maild-failover-"))
    postgres = _start()
    dovecot = start_dovecot("failover")
    try:
        times = _failover(work, postgres, dovecot, args.kills, args.lease)
        print(
            f"failover (lease {args.lease} s): kill -> next mail's ticket "
            f"{', '.join(f'{t:.1f}' for t in times)} s; "
            f"median {statistics.median(times):.1f} s, max {max(times):.1f} s "
            f"(goal < 10 s)"
        )
        rates = {
            n: _throughput(work, postgres, dovecot, n, args.mails, args.lease)
            for n in (1, 2, 3)
        }
        for n, rate in rates.items():
            print(
                f"throughput, {n} instance(s), {args.mails} mails over SMTP: "
                f"{rate:.1f} mails/s ({rate / rates[1]:.2f}x one)"
            )
    finally:
        stop_dovecot(dovecot)
        _stop(postgres)
        shutil.rmtree(work, ignore_errors=True)


def _cluster(
    work: Path, postgres: PostgresServer, dovecot: DovecotServer, name: str, lease: int
) -> tuple[Cluster, HoldingSink, Database]:
    url = postgres.url(postgres.create_database())
    upgrade(url)
    root = work / name
    (root / "shared").mkdir(parents=True)
    dovecot.fresh_mailbox(HELPDESK)
    sink = HoldingSink()
    sink.start()
    return (
        Cluster(root, url, dovecot, sink.port, lease_seconds=lease),
        sink,
        Database(url),
    )


def _failover(
    work: Path, postgres: PostgresServer, dovecot: DovecotServer, kills: int, lease: int
) -> list[float]:
    cluster, sink, db = _cluster(work, postgres, dovecot, "failover", lease)
    times: list[float] = []
    try:
        for name in ("a", "b", "c"):
            cluster.start(name)
        for n in range(kills):
            holder = str(wait_until(lambda: cluster.holder("imap"), 60, "a holder"))
            before = len(db.tickets())
            kill(cluster.daemons[holder])
            killed_at = time.monotonic()
            dovecot.append(HELPDESK, new_mail(n))
            wait_until(lambda: len(db.tickets()) > before, 120, "the next ticket")  # noqa: B023
            times.append(time.monotonic() - killed_at)
            cluster.start(holder)  # back, as a standby
    finally:
        cluster.stop_all()
        sink.stop()
        db.close()
    return times


def _throughput(
    work: Path,
    postgres: PostgresServer,
    dovecot: DovecotServer,
    instances: int,
    count: int,
    lease: int,
) -> float:
    cluster, sink, db = _cluster(work, postgres, dovecot, f"rate{instances}", lease)
    mails = [new_mail(n) for n in range(count)]
    try:
        for name in "abc"[:instances]:
            cluster.start(name)
        clients = 4 * instances
        started = time.monotonic()
        threads = [
            threading.Thread(target=_sender(cluster, mails[k::clients], k))
            for k in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: len(db.tickets()) >= count, 600, "every ticket")
        return count / (time.monotonic() - started)
    finally:
        cluster.stop_all()
        sink.stop()
        db.close()


def _sender(cluster: Cluster, mails: list[bytes], first: int) -> Callable[[], None]:
    def send() -> None:
        for mail in mails:
            cluster.send(mail, first)

    return send


if __name__ == "__main__":
    main()
