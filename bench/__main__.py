"""`python -m bench`: run the intake benchmarks and print the table. I/O.

Phases, in order: the floor (a bare Python loop over the same mails), the
throughput of maild on SQLite, the acknowledgement latency over IMAP IDLE and
over SMTP, the throughput and `tickets list` on a database that already holds
--scale-tickets tickets; with --postgres the throughput and scale phases run
on a private PostgreSQL as well; with --profile one more throughput run under
cProfile (bench/out/profile/). Results go to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import corpus, report
from bench.floor import run_floor
from bench.harness import DbProbe
from bench.latency import idle_floor, imap_latency, smtp_latency
from bench.scale import fill
from bench.throughput import fill_inbox, run_throughput
from maild.core.numbering import ticket_day
from tests.support.dovecot import DovecotServer, start_dovecot, stop_dovecot

OUT = Path(__file__).resolve().parent / "out"
PHASES = ("floor", "throughput", "latency", "scale")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--mails", type=int, help="mails in the inbox (1000)")
    parser.add_argument("--rate", type=float, default=5.0, help="latency mails/s")
    parser.add_argument("--seconds", type=float, help="latency duration (60)")
    parser.add_argument("--scale-tickets", type=int, help="tickets (1000000)")
    parser.add_argument("--postgres", action="store_true", help="also PostgreSQL")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 100 mails, 10 s, 10,000 tickets",
    )
    parser.add_argument(
        "--profile", action="store_true", help="one more throughput run under cProfile"
    )
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases of {PHASES}"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    quick = args.quick
    args.mails = args.mails or (100 if quick else 1000)
    args.seconds = args.seconds or (10.0 if quick else 60.0)
    args.scale_tickets = args.scale_tickets or (10_000 if quick else 1_000_000)
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = args.only - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


class Corpus:
    """The throughput mails, made again if the calendar day changes."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed = count, seed
        self._day, self._mails = "", list[corpus.BenchMail]()

    def mails(self) -> list[corpus.BenchMail]:
        day = ticket_day(datetime.now(UTC), "Europe/Paris")
        if day != self._day:
            self._day = day
            self._mails = corpus.generate(self.count, seed=self.seed, day=day)
        return self._mails


def _sqlite_url(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'maild.db'}"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=OUT.parent.parent, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    return done.stdout.strip()


def _machine() -> dict[str, Any]:
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "maild_changed_since_commit": bool(_git("status", "--porcelain", "maild")),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
    }


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _latency(args: argparse.Namespace, work: Path, server: DovecotServer) -> dict:
    count = max(1, int(args.rate * args.seconds))
    day = ticket_day(datetime.now(UTC), "Europe/Paris")

    def make(prefix: str, seed: int) -> list[corpus.BenchMail]:
        return corpus.generate(
            count + 1, seed=seed, day=day, replies=False, prefix=prefix
        )

    imap_mails, smtp_mails = make("imap", args.seed + 1), make("smtp", args.seed + 2)
    _say(f"latency over IMAP IDLE: {count} mails at {args.rate:g}/s")
    imap = imap_latency(
        work / "lat-imap",
        server,
        imap_mails[0],
        imap_mails[1:],
        rate=args.rate,
        database_url=_sqlite_url(work / "lat-imap"),
    )
    _say(f"latency over SMTP: {count} mails at {args.rate:g}/s")
    smtp = smtp_latency(
        work / "lat-smtp",
        smtp_mails[0],
        smtp_mails[1:],
        rate=args.rate,
        database_url=_sqlite_url(work / "lat-smtp"),
    )
    _say("latency: Dovecot IDLE notification alone")
    imap["dovecot_idle_floor"] = idle_floor(server, 5 if args.quick else 20)
    return {"imap": imap, "smtp": smtp}


def _scale(
    args: argparse.Namespace,
    work: Path,
    server: DovecotServer,
    urls: tuple[str, str],
    name: str,
) -> dict[str, Any]:
    """Fill the first database, then time the burst on an empty one (the second)
    and at once on the filled one: this machine's speed drifts by the minute,
    so the comparison is made between two runs back to back."""
    url, empty_url = urls
    _say(f"scale {name}: filling {args.scale_tickets:,} tickets")
    filled = fill(url, args.scale_tickets, seed=args.seed)
    _say(f"scale {name}: filled in {filled['fill_seconds']} s; empty, then filled")
    mails = args.corpus.mails()
    fill_inbox(server, mails)
    control = run_throughput(
        work / f"scale-empty-{name}", server, mails, database_url=empty_url
    )
    probe = DbProbe(url)
    since = probe.highest_ids()
    probe.close()
    fill_inbox(server, mails)
    run = run_throughput(
        work / f"scale-{name}", server, mails, database_url=url, since=since
    )
    change = run["mails_per_s"] / control["mails_per_s"] - 1
    return {"fill": filled, "empty": control, "run": run, "change": round(change, 3)}


def _postgres(
    args: argparse.Namespace, work: Path, server: DovecotServer, results: dict[str, Any]
) -> None:
    from tests.support.postgres import _start, _stop

    _say("postgresql: starting a private server")
    pg = _start()
    try:
        if "throughput" in args.only:
            mails = args.corpus.mails()
            fill_inbox(server, mails)
            url = pg.url(pg.create_database("bench"))
            _say(f"throughput postgresql: {len(mails)} mails")
            results["throughput"]["postgresql"] = run_throughput(
                work / "tp-pg", server, mails, database_url=url
            )
        if "scale" in args.only:
            urls = (
                pg.url(pg.create_database("bench_scale")),
                pg.url(pg.create_database("bench_scale_empty")),
            )
            results["scale"]["postgresql"] = _scale(
                args, work, server, urls, "postgresql"
            )
    finally:
        _stop(pg)


def _profile(
    args: argparse.Namespace,
    work: Path,
    server: DovecotServer,
    results: dict[str, Any],
) -> None:
    """Two more SQLite throughput runs: step timers, then cProfile."""
    from bench.profile_report import summarise

    target = args.out / "profile"
    shutil.rmtree(target, ignore_errors=True)
    mails = args.corpus.mails()
    runs = {}
    for mode in ("timers", "cprofile"):
        fill_inbox(server, mails)
        _say(f"profile: throughput run with {mode}, {len(mails)} mails")
        directory = work / f"profile-{mode}"
        runs[mode] = run_throughput(
            directory,
            server,
            mails,
            database_url=_sqlite_url(directory),
            profile_dir=target / mode,
            is_timers=mode == "timers",
            list_runs=1,
        )
    summary = summarise(target, work / "profile-timers" / "maild.db", mails)
    results["profile"] = {"runs": runs, **summary}


def _phases(
    args: argparse.Namespace, work: Path, server: DovecotServer, results: dict[str, Any]
) -> None:
    mails = args.corpus.mails()
    if args.only & {"floor", "throughput"}:
        _say(f"appending {len(mails)} mails to the inbox")
        results["append_seconds"] = round(fill_inbox(server, mails), 1)
    if "floor" in args.only:
        _say("floor: fetch + email parse + SQLite insert")
        results["floor"] = run_floor(server, work / "floor.db", len(mails))
    if "throughput" in args.only:
        _say(f"throughput sqlite: {len(mails)} mails")
        results["throughput"]["sqlite"] = run_throughput(
            work / "tp-sqlite",
            server,
            mails,
            database_url=_sqlite_url(work / "tp-sqlite"),
        )
    if "latency" in args.only:
        results["latency"] = _latency(args, work, server)
    if "scale" in args.only:
        urls = (
            _sqlite_url(work / "scale-sqlite"),
            _sqlite_url(work / "scale-empty-sqlite"),
        )
        results["scale"]["sqlite"] = _scale(args, work, server, urls, "sqlite")
    if args.postgres:
        _postgres(args, work, server, results)
    if args.profile:
        _profile(args, work, server, results)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the bench like Ctrl-C: the servers it started are stopped."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table; write results.json."""
    args = _arguments(argv)
    _stop_on_sigterm()
    started = time.monotonic()
    args.corpus = Corpus(args.mails, args.seed)
    work = Path(tempfile.mkdtemp(prefix="maild-bench-"))
    results: dict[str, Any] = {
        "machine": _machine(),
        "command": " ".join(
            ["python -m bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "corpus": corpus.summary(args.corpus.mails()),
        "throughput": {},
        "scale": {},
    }
    _say(f"work dir {work}; corpus {results['corpus']}")
    server = start_dovecot("bench")
    try:
        _phases(args, work, server, results)
    except BaseException as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        stop_dovecot(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        results["seconds"] = round(time.monotonic() - started, 1)
        report.write_json(results, args.out / "results.json")  # partial on error
    print()
    print(report.render(report.table(results)))
    print(f"\nresults: {args.out / 'results.json'}")
    if "profile" in results:
        print(f"profile: {args.out / 'profile' / 'summary.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
