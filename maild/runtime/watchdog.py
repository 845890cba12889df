"""systemd: readiness, status lines and the watchdog (sd_notify(3)). I/O.

The protocol is one datagram per message to the AF_UNIX socket systemd names
in NOTIFY_SOCKET (a leading "@" is the abstract namespace); outside systemd
there is no socket and every call here does nothing. `maild run` tells:

- READY=1 once the store is migrated, the intakes listen and, with [imap],
  the mailbox is logged in (the IMAP loop may reach it after start: READY
  waits for it, and STATUS says why);
- STATUS= every few seconds: mails handled, outbox depth;
- WATCHDOG=1 every quarter of WATCHDOG_USEC, but only while every loop that
  matters keeps its promise: each loop reports a Heartbeat ("well now, again
  within N s") and one that overstays it by half WATCHDOG_USEC (stuck in the
  store or on a mailbox that stopped answering) stops the pings, so systemd
  restarts the daemon (core.health.stale_loops);
- STOPPING=1 when the daemon starts stopping (SIGTERM).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from maild.config import ServiceManager
from maild.core.health import Heartbeat, stale_loops
from maild.errors import MaildError

log = logging.getLogger(__name__)

STATUS_SECONDS = 5.0  # how often STATUS= is refreshed


class Notifier:
    """Sends sd_notify messages; does nothing without NOTIFY_SOCKET."""

    def __init__(self, manager: ServiceManager) -> None:
        address = manager.notify_socket
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def is_active(self) -> bool:
        return bool(self._address)

    def send(self, *lines: str) -> None:
        """Send lines such as "READY=1" in one datagram; a lost one is logged."""
        if not self._address:
            return
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto("\n".join(lines).encode(), self._address)
            except OSError as exc:  # systemd gone or restarting: try next time
                log.warning("systemd notify failed: %s", exc)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class Heartbeats:
    """The loops' latest reports, by loop name; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[str, Heartbeat] = {}
        self._lock = threading.Lock()

    def beat(self, loop: str, within: float) -> None:
        """Loop is well now, and will beat again within that many seconds."""
        with self._lock:
            self._beats[loop] = Heartbeat(self._clock(), within)

    def beater(self, loop: str) -> Callable[[float], None]:
        """The callable a loop is given: beater(within)."""
        return lambda within: self.beat(loop, within)

    def stale(self, grace: float) -> tuple[str, ...]:
        with self._lock:
            beats = dict(self._beats)
        return stale_loops(beats, self._clock(), grace)


class Watchdog:
    """The thread that sends READY, STATUS and the WATCHDOG pings."""

    def __init__(
        self,
        notifier: Notifier,
        manager: ServiceManager,
        heartbeats: Heartbeats,
        is_ready: Callable[[], bool],
        status: Callable[[], str],
    ) -> None:
        self._notifier = notifier
        self._period = manager.watchdog_seconds
        self._heartbeats = heartbeats
        self._is_ready = is_ready
        self._status = status
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="maild-watchdog", daemon=True
        )
        self._is_ready_sent = False
        self._stale: tuple[str, ...] = ()

    def start(self) -> None:
        if self._notifier.is_active:
            self._thread.start()

    def stop(self) -> None:
        """Tell systemd the daemon is stopping, and stop pinging."""
        self._notifier.send("STOPPING=1", "STATUS=stopping")
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        interval = min(self._period / 4, 1.0) if self._period else 1.0
        next_status = 0.0
        while True:
            self._tick()
            if time.monotonic() >= next_status:
                self._send_status()
                next_status = time.monotonic() + STATUS_SECONDS
            if self._stop.wait(interval):
                return

    def _tick(self) -> None:
        if not self._is_ready_sent and self._is_ready():
            self._is_ready_sent = True
            self._notifier.send("READY=1", f"STATUS={self._safe_status()}")
            log.info("systemd told: ready")
        if not self._period:
            return
        stale = self._heartbeats.stale(self._period / 2)
        if stale != self._stale:
            if stale:
                log.error("watchdog: %s stuck; systemd pings stopped", ",".join(stale))
            else:
                log.warning("watchdog: every loop moves again; pings resumed")
            self._stale = stale
        if not stale:
            self._notifier.send("WATCHDOG=1")

    def _send_status(self) -> None:
        line = self._safe_status()
        if not self._is_ready_sent:
            line = f"starting: {line}"
        self._notifier.send(f"STATUS={line}")

    def _safe_status(self) -> str:
        try:
            return self._status()
        except (MaildError, OSError) as exc:  # a status read that failed says so
            return f"status unavailable: {exc}"
