"""Parse step, run safely: parse_mail in worker processes. Does I/O (processes, pipes).

A pathological mail must not take the daemon down, so parsing runs in a small
pool of worker processes ('forkserver' context: never fork a threaded daemon).
Each worker's address space is capped; a parse that overruns its time gets
its worker killed and replaced (ParseTimeout), a worker that dies is replaced
too (UnparseableMail). The mail's bytes go to the worker over a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from types import TracebackType

from maild.core.parse import ParseLimits, parse_mail
from maild.domain import InboundMail
from maild.errors import MailRejected, ParseTimeout, UnparseableMail

log = logging.getLogger(__name__)

ParseFunction = Callable[[bytes, str | None, tuple[str, ...], ParseLimits], InboundMail]
Request = tuple[bytes, str | None, tuple[str, ...]]
_STOP_SECONDS = 5.0
_START_SECONDS = 60.0
# Mails a caller may have parsed ahead of the one in hand: a large mail's
# parse then starts while several smaller ones are applied, not just one.
AHEAD = 6


def _serve(
    conn: Connection,
    target: ParseFunction,
    limits: ParseLimits,
    memory: int | None,
    log_setup: Callable[[], None] | None,
) -> None:
    """Worker loop: one request in, one answer out, until the pipe closes."""
    # Ctrl-C and systemd's SIGTERM reach the whole process group; the daemon
    # still needs its workers for the mail in hand, and closes them after.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if log_setup is not None:  # the daemon's: its format, on its stderr
        log_setup()
    else:
        # mail-parser warns about every MIME type it does not render; with
        # nothing configuring logging, those lines would reach stderr raw.
        logging.getLogger("mailparser").setLevel(logging.ERROR)
    conn.send("ready")  # imports done: from now on only parsing is timed
    while True:
        try:
            sender, recipients = conn.recv()
            raw = conn.recv_bytes()
        except EOFError:
            return  # the pool closed the pipe: stop
        try:
            answer: InboundMail | MailRejected = target(raw, sender, recipients, limits)
        except MailRejected as exc:
            answer = exc
        conn.send(answer)


class _Worker:
    def __init__(self, context: ForkServerContext, args: tuple[object, ...]) -> None:
        """Start the worker process; wait_ready() waits for its imports."""
        self.conn, child_conn = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child_conn, *args), name="maild-parser", daemon=True
        )
        self.process.start()
        child_conn.close()

    def wait_ready(self) -> _Worker:
        """Return self once the worker can parse; UnparseableMail if it cannot."""
        try:
            if not self.conn.poll(_START_SECONDS):
                raise EOFError  # treated as a worker that could not start
            self.conn.recv()
        except (EOFError, OSError):
            self.stop(kill=True)
            code = self.process.exitcode
            raise UnparseableMail(
                f"parser worker failed to start: exit code {code}"
            ) from None
        return self

    def stop(self, *, kill: bool) -> None:
        self.conn.close()  # a healthy worker sees EOF and returns
        if kill:
            self.process.kill()
        self.process.join(_STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class ParserPool:
    """Parse mails in worker processes; thread-safe; use as a context manager,
    which waits for the workers on entry, or call wait_ready() and close()."""

    def __init__(
        self,
        limits: ParseLimits,
        parse_seconds: float,
        workers: int = 2,
        memory_bytes: int | None = 1_073_741_824,
        target: ParseFunction = parse_mail,
        log_setup: Callable[[], None] | None = None,
    ) -> None:
        """log_setup: called first in each worker, a process of its own."""
        self._context = multiprocessing.get_context("forkserver")
        # the fork server imports the parser once, and each worker forked from
        # it starts with it loaded (when this pool is the first to start it)
        self._context.set_forkserver_preload([_serve.__module__])
        self._args = (target, limits, memory_bytes, log_setup)
        self._parse_seconds = parse_seconds
        self._size = 0  # workers ready, idle or parsing
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._is_closed = False
        # one thread a worker waits on its answer; the parses kept are those
        # of the mail in hand and of the AHEAD next ones
        self._ahead = ThreadPoolExecutor(
            workers, thread_name_prefix="maild-parse-ahead"
        )
        self._kept = AHEAD + 1
        self._started: dict[int, tuple[Request, Future[InboundMail]]] = {}
        self._started_lock = threading.Lock()
        # started together, and waited for in wait_ready(): their imports
        # run while the caller goes on starting the rest
        self._starting = [_Worker(self._context, self._args) for _ in range(workers)]
        self._starting_lock = threading.Lock()

    def wait_ready(self) -> None:
        """Wait until every worker can parse; raise UnparseableMail if one cannot.

        Call it once the rest is started: a daemon whose parser cannot start
        stops at start, not at its first mail.
        """
        with self._starting_lock:
            starting, self._starting = self._starting, []
            try:
                ready = [worker.wait_ready() for worker in starting]
            except UnparseableMail:
                for worker in starting:  # stop them all, the ready ones too
                    worker.stop(kill=True)
                raise
            for worker in ready:
                self._idle.put(worker)
            self._size += len(ready)

    def parse_ahead(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> None:
        """Start parsing a mail that `parse` will be asked for next.

        The IMAP intake calls this for the next mails of a batch while the
        current one is applied, so the workers parse while the mail's
        transaction runs. Only the newest few are kept: a mail that is never
        asked for costs a parse and nothing else.
        """
        request: Request = (raw, envelope_sender, envelope_recipients)
        future = self._ahead.submit(self._parse_now, *request)
        with self._started_lock:
            self._started[id(raw)] = (request, future)  # raw held: id stays unique
            while len(self._started) > self._kept:
                del self._started[next(iter(self._started))]

    def parse(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> InboundMail:
        """Parse one mail in a free worker; raise MailRejected on failure."""
        with self._started_lock:
            started = self._started.pop(id(raw), None)
        if started is not None:
            request, future = started
            if request[1:] == (envelope_sender, envelope_recipients):  # same mail
                return future.result()
        return self._parse_now(raw, envelope_sender, envelope_recipients)

    def _parse_now(
        self,
        raw: bytes,
        envelope_sender: str | None,
        envelope_recipients: tuple[str, ...],
    ) -> InboundMail:
        if self._starting:  # asked before wait_ready(): wait here
            self.wait_ready()
        worker = self._idle.get()
        try:
            answer = self._ask(worker, raw, envelope_sender, envelope_recipients)
        except (ParseTimeout, UnparseableMail):
            worker.stop(kill=True)
            worker = _Worker(self._context, self._args).wait_ready()
            raise
        finally:
            self._idle.put(worker)
        if isinstance(answer, MailRejected):
            raise answer
        return answer

    def _ask(
        self,
        worker: _Worker,
        raw: bytes,
        sender: str | None,
        recipients: tuple[str, ...],
    ) -> InboundMail | MailRejected:
        pid = worker.process.pid
        try:
            worker.conn.send((sender, recipients))
            worker.conn.send_bytes(raw)
            if not worker.conn.poll(self._parse_seconds):
                log.warning(
                    "parser worker %s overran %s s: killed", pid, self._parse_seconds
                )
                raise ParseTimeout(f"parsing took longer than {self._parse_seconds} s")
            answer: InboundMail | MailRejected = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(_STOP_SECONDS)
            code = worker.process.exitcode
            log.warning("parser worker %s died with exit code %s", pid, code)
            raise UnparseableMail(f"parser worker died: exit code {code}") from None
        return answer

    def close(self) -> None:
        """Stop every worker, waiting for parses in progress to finish."""
        if self._is_closed:
            return
        self._is_closed = True
        self._ahead.shutdown(wait=True, cancel_futures=True)
        self._started.clear()
        with self._starting_lock:
            starting, self._starting = self._starting, []
        for worker in starting:  # closed before they were waited for
            worker.stop(kill=True)
        for _ in range(self._size):
            self._idle.get().stop(kill=False)

    def __enter__(self) -> ParserPool:
        try:
            self.wait_ready()
        except UnparseableMail:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
