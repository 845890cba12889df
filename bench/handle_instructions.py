"""`python -m bench.handle_instructions`: instructions to handle one mail. I/O.

bench.handle_cost times the CPU; on a shared 2-core VM its rounds differ by
10 % from one run to the next, more than the 5 % a change may cost. This
counts instead: valgrind's cachegrind runs a child that builds the daemon's
parts and hands it the first N mails of the bench corpus (parsed in process,
each mail's notifications delivered to an SMTP sink after it, as in
handle_cost), once for N = --base and once for N = --base + --mails; the
difference, divided by --mails, is the user-space instructions one mail
costs, start-up excluded. Two runs of the same tree agree within 0.2 %;
run the two revisions one right after the other: the same tree counted
0.9 % more at 15:20 than at 14:00 (call-back deadlines depend on the hour).

    apt-get install valgrind   # not needed by maild or its tests
    .venv/bin/python -m bench.handle_instructions [--mails 100] [--base 30]

To compare with another revision, run it from a worktree of that revision
with PYTHONPATH set to it (the .venv's editable install points at this one).
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench import corpus

_SEED = 20261129
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def handle_first(count: int, pool: int) -> None:
    """The child: handle the first count of pool mails, deliver after each."""
    from bench.handle_cost import InProcessParser
    from maild.config import load_settings
    from maild.core.numbering import ticket_day
    from maild.domain import MailDisposition, MailOrigin
    from maild.runtime import daemon
    from tests.support.daemon import write_config
    from tests.support.smtp_sink import SmtpSink

    logging.disable(logging.WARNING)
    day = ticket_day(datetime.now(UTC), "Europe/Paris")  # replies find tickets
    mails = [m.raw for m in corpus.generate(pool, seed=_SEED, day=day)]
    sink = SmtpSink()
    sink.start()
    try:
        with tempfile.TemporaryDirectory(prefix="maild-instructions-") as directory:
            config, _ = write_config(Path(directory), sink_port=sink.port)
            parts = daemon.build(load_settings(config), parse_workers=1)
            try:
                parts.service.parser = InProcessParser()
                for uid, raw in enumerate(mails[:count], start=1):
                    end = parts.service.handle(raw, MailOrigin("bench", 1, uid))
                    if end != MailDisposition.DONE:
                        raise RuntimeError(f"mail {uid} ended {end}")
                    parts.outbox.deliver_due()
            finally:
                parts.close()
    finally:
        sink.stop()


def instructions(count: int, pool: int) -> int:
    """User-space instructions of a child handling count mails."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no",
         "--cachegrind-out-file=/dev/null", sys.executable, "-m",
         "bench.handle_instructions", "--child", str(count), "--pool", str(pool)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the child failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=100)
    parser.add_argument("--base", type=int, default=30)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        handle_first(args.child, args.pool)
        return
    pool = args.base + args.mails
    with ThreadPoolExecutor(2) as runs:  # valgrind runs one core each
        small, large = runs.map(lambda n: instructions(n, pool), (args.base, pool))
    per_mail = (large - small) / args.mails
    print(
        f"{args.mails} mails of the bench corpus (after {args.base}): "
        f"{per_mail / 1e6:.2f} million instructions a mail (handle, parse "
        f"included, and delivery); start-up and {args.base} mails: "
        f"{small / 1e9:.2f} billion"
    )


if __name__ == "__main__":
    main()
