"""Test support: the modules the outbox sender's process loads. I/O.

`python -m tests.support.sender_probe CONFIG`, in a fresh interpreter, builds
the daemon's parts as `maild run` does (their parse workers start the fork
server of multiprocessing, which preloads the parse stack), then starts a
child as SendingProcess does (with its start method) that runs the real
`serve` with its doorbell already closed: it builds its store and sender,
sends what is due and stops. Prints one JSON line: the child's exit code and
the sorted names of the modules it had loaded.

This module is the child's target, so its imports are the child's too: the
sender's own, and the daemon's only in main(), in the parent.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from maild.config import Settings, load_settings
from maild.runtime.sender import START_METHOD, serve


def serve_then_report(
    settings: Settings, doorbell: Connection, answer: Connection
) -> None:
    """The child: serve until the closed doorbell stops it; report sys.modules."""
    try:
        serve(settings, doorbell)
    finally:
        answer.send(sorted(sys.modules))


def main() -> None:
    from maild.runtime.sender_wiring import system_clock
    from tests.support.desk import build_parts  # the daemon: in the parent only

    settings = load_settings(Path(sys.argv[1]))
    parts = build_parts(settings, system_clock)
    try:
        context = multiprocessing.get_context(START_METHOD)
        doorbell, ring = context.Pipe(duplex=False)
        answers, answer = context.Pipe(duplex=False)
        ring.close()  # the daemon is stopping: send what is due, then stop
        child = context.Process(
            target=serve_then_report, args=(settings, doorbell, answer)
        )
        child.start()
        answer.close()
        try:
            modules = answers.recv() if answers.poll(60) else []
        except EOFError:  # the child died before it could answer
            modules = []
        child.join(60)
    finally:
        parts.close()
    print(json.dumps({"exitcode": child.exitcode, "modules": modules}))


if __name__ == "__main__":
    main()
