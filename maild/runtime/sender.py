"""The outbox sender in a process of its own. Wiring and processes only.

The daemon is one Python process: its threads share one core. Sending the
notifications (reading the due rows, the SMTP conversation, marking them
sent) took about an eighth of that core during a burst, so `maild run` runs
the OutboxSender in a child process, with its own database connections.

The child is a fresh interpreter ('spawn'), not a fork of the parse workers'
fork server, which preloads the parse stack (mail-parser, inscriptis, lxml):
it imports this module and maild.runtime.sender_wiring, which import nothing
of intake, parsing or scheduling, and not the daemon (STYLE: the sender
process imports only what sending needs; the "lean-sender" contract in
pyproject.toml and tests/adapters/test_sending.py check it). Spawning costs
an interpreter start, once per child; the child also imports the parent's
__main__ again (`maild`: the command line, which imports the daemon only
inside the commands that run it).

The daemon rings the child through a pipe after every commit: one byte,
written without blocking (a full pipe means the child has rings to read
already). Closing the pipe tells the child to send what is queued and stop;
so does the daemon's death, which closes the pipe too. No lock is shared: a
child killed at any point cannot block the daemon (a multiprocessing Event
can, when its waiter dies in wait()).

The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C or systemd's stop
reach the whole process group): the daemon closes the pipe once its intakes
have finished the mail in hand, so what they queued is still sent. A child
that dies is started again, after a pause that grows while it keeps dying.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

from maild.config import Settings
from maild.runtime.logs import configure_logging
from maild.runtime.sender_wiring import build_sender

log = logging.getLogger(__name__)

# A fresh interpreter: nothing inherited (see the module's docstring).
START_METHOD: Final = "spawn"
_START_PAUSE = 1.0
_MAX_PAUSE = 60.0


class SendingProcess:
    """Runs and supervises the child process that delivers the outbox."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context(START_METHOD)
        self._reader, writer = self._context.Pipe(duplex=False)
        os.set_blocking(writer.fileno(), False)
        self._writer: Connection | None = writer
        self._writer_lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="sending", daemon=True
        )
        self._child: BaseProcess | None = None

    def wake(self) -> None:
        """Tell the child that a commit queued mail."""
        with self._writer_lock:  # never write to a closed (reused) descriptor
            if self._writer is None:
                return
            with contextlib.suppress(BlockingIOError):  # rung already
                os.write(self._writer.fileno(), b"\0")

    def start(self) -> None:
        self._supervisor.start()

    def stop(self, timeout: float) -> None:
        """Let the child send what is queued and stop; kill it after timeout."""
        self._stopping.set()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()  # the child reads the end of the pipe
                self._writer = None
        if self._supervisor.ident is not None:  # started
            self._supervisor.join(timeout)
        child = self._child
        if child is not None and child.is_alive():
            log.warning("outbox sender did not stop in %.0f s: killed", timeout)
            child.kill()
            child.join()
        self._reader.close()

    def _supervise(self) -> None:
        pause = _START_PAUSE
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                child = self._context.Process(
                    target=serve,
                    args=(self.settings, self._reader),
                    name="maild-sender",
                )
                self._child = child
                child.start()
                child.join()
                ended = f"exited (code {child.exitcode})"
            except (OSError, EOFError) as exc:  # no memory, no process: retry
                ended = f"could not start ({type(exc).__name__}: {exc})"
            if self._stopping.is_set():
                return
            if time.monotonic() - started > _MAX_PAUSE:
                pause = _START_PAUSE  # it had been running well: start over
            log.error("outbox sender %s; restarting in %.0f s", ended, pause)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, _MAX_PAUSE)


def serve(settings: Settings, doorbell: Connection) -> None:
    """The child: deliver until the daemon closes the pipe or is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _name_process("maild-sender")
    configure_logging(settings.log)  # the process's entry point: as the daemon's
    bell = Doorbell(doorbell)
    sender, store = build_sender(settings, bell)
    try:
        sender.run(bell)
    finally:
        store.close()


class Doorbell:
    """The child's end of the pipe, as the sender's wakeup and stop flags."""

    def __init__(self, reader: Connection) -> None:
        self.reader = reader
        os.set_blocking(reader.fileno(), False)
        self._is_closed = False
        self._rung_here = False

    def is_set(self) -> bool:
        """Stop: the daemon closed the pipe, or died."""
        return self._is_closed

    def set(self) -> None:
        """Rung from within the child (a failure report queued): go again."""
        self._rung_here = True

    def clear(self) -> None:
        """Nothing to clear: wait() reads the rings it returns for."""

    def wait(self, timeout: float | None = None) -> bool:
        """Return after a ring, the end of the pipe, or timeout."""
        if self._rung_here:
            self._rung_here = False
            return True
        if not self.reader.poll(timeout):
            return False
        while True:
            try:
                rings = os.read(self.reader.fileno(), 4096)
            except BlockingIOError:
                return True
            if not rings:
                self._is_closed = True
                return True


def _name_process(name: str) -> None:
    """Show the name in ps and top (Linux); elsewhere keep the interpreter's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name)
