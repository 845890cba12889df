"""Run the maild command line under cProfile, every thread, plus SQL timings. I/O.

    python -m bench.profiled --out DIR [--timers] --config FILE run

cProfile follows one thread only; here every thread the daemon starts gets
its own profiler (Thread.run is wrapped: bench code only, never the daemon's)
and writes DIR/<thread>.prof when it ends; the main thread writes
DIR/main.prof. With --timers there is no profiler: the steps in TIMED are
wrapped with time.perf_counter (far less overhead) and their totals written
to DIR/timers.json. Either way every SQL statement is timed (SQLAlchemy
engine events) and the totals per statement written to DIR/sql.json with one
example of its parameters, so the bench can ask for its query plan.
"""

from __future__ import annotations

import cProfile
import functools
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_sql: dict[str, dict[str, Any]] = {}
_sql_lock = threading.Lock()
_local = threading.local()


def _before(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
    _local.started = time.perf_counter()


def _after(
    conn: Any, cursor: Any, statement: str, parameters: Any, *_args: Any
) -> None:
    elapsed = time.perf_counter() - getattr(_local, "started", time.perf_counter())
    with _sql_lock:
        entry = _sql.setdefault(
            statement, {"count": 0, "seconds": 0.0, "example": _printable(parameters)}
        )
        entry["count"] += 1
        entry["seconds"] += elapsed


def _printable(parameters: Any) -> Any:
    if isinstance(parameters, (list, tuple)):
        return [_printable(p) for p in parameters]
    if isinstance(parameters, dict):
        return {k: _printable(v) for k, v in parameters.items()}
    if isinstance(parameters, (bytes, bytearray, memoryview)):
        return None
    if isinstance(parameters, (int, float, str)) or parameters is None:
        return parameters
    return str(parameters)


# (label, module, attribute path): the steps of handling a mail, timed with
# perf_counter in --timers mode. Functions imported by name are patched where
# they are looked up (maild.app.handle_mail.classify,
# maild.runtime.daemon.build_message).
TIMED = (
    ("handle one mail (service)", "maild.app.handle_mail", "HandleMail.handle"),
    (
        "  register + attempt commit",
        "maild.adapters.database.store",
        "Store.register_mail",
    ),
    (
        "  parse in worker (round trip)",
        "maild.adapters.intake.parse_worker",
        "ParserPool.parse",
    ),
    ("  classify (+ thread lookups)", "maild.app.handle_mail", "classify"),
    ("  open ticket", "maild.app.open_ticket", "OpenTicket.open"),
    ("  reply transaction", "maild.app.handle_mail", "HandleMail._reply"),
    ("    queue notifications", "maild.app.queue_notifications", "Outbound.queue"),
    ("      answer caps", "maild.app.queue_notifications", "Outbound._within_caps"),
    ("      render templates", "maild.adapters.templates", "TemplateRenderer.render"),
    ("      build MIME message", "maild.runtime.daemon", "build_message"),
    ("blob writes (fsync each)", "maild.adapters.database.blobs", "BlobStore.put"),
    ("ORM flush", "sqlalchemy.orm.session", "Session.flush"),
    (
        "ORM commits (writes and reads)",
        "sqlalchemy.orm.session",
        "SessionTransaction.commit",
    ),
    ("IMAP fetch", "imapclient.imapclient", "IMAPClient.fetch"),
    ("IMAP move", "imapclient.imapclient", "IMAPClient.move"),
    (
        "outbox deliver_due",
        "maild.adapters.outgoing.outbox",
        "OutboxSender.deliver_due",
    ),
    ("  outbox SMTP send", "maild.adapters.outgoing.relay", "SmtpRelay.send"),
    ("  outbox mark sent", "maild.adapters.database.store", "Store.mark_sent"),
)
_timers: dict[str, list[float]] = {}


def _timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    entry = _timers.setdefault(label, [0, 0.0])

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with _sql_lock:
                entry[0] += 1
                entry[1] += elapsed

    return wrapper


def _install_timers() -> None:
    for label, module_name, path in TIMED:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, _timed(label, getattr(owner, name)))


def _profiled_run(out: Path, original: Callable[[threading.Thread], None]) -> Any:
    def run(self: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()
            name = "".join(c if c.isalnum() else "_" for c in self.name)
            profiler.dump_stats(out / f"thread-{name}-{self.ident}.prof")

    return run


def main(argv: list[str]) -> int:
    """Profile `maild` with argv (after --out DIR); return its exit status."""
    if len(argv) < 2 or argv[0] != "--out":
        print(
            "usage: python -m bench.profiled --out DIR [--timers] MAILD-ARGS...",
            file=sys.stderr,
        )
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    is_timers = argv[2:3] == ["--timers"]
    argv = argv[3:] if is_timers else argv[2:]
    if is_timers:
        _install_timers()
    else:
        threading.Thread.run = _profiled_run(out, threading.Thread.run)  # type: ignore[method-assign]
    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)
    logging.basicConfig(
        level=os.environ.get("MAILD_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )  # as maild/__main__.py does
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    from maild.cli import main as maild_main

    profiler = cProfile.Profile()
    if not is_timers:
        profiler.enable()
    try:
        status = maild_main(argv)
    finally:
        if not is_timers:
            profiler.disable()
            profiler.dump_stats(out / "main.prof")
        with _sql_lock:
            (out / "sql.json").write_text(json.dumps(_sql, indent=1))
            (out / "timers.json").write_text(json.dumps(_timers, indent=1))
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
