"""This instance among several: its heartbeat and the roles it leases. Threads.

The IMAP consumer and the SLA tick (with the digests) run in one instance at
a time: the holder of the role's lease in the database. A RoleKeeper thread
writes the instance's heartbeat, renews the leases it holds every lease/3,
and tries every second to take those it does not; a role whose lease it
could not renew is given up (its tenure's stop flag set) before the lease
runs out. Every transaction of a role runs fenced (Store.fenced), so even a
keeper that did not notice in time (a process paused past its lease) writes
nothing. On SQLite the instance is alone (the lock file, single_instance)
and runs every role without a lease. The design: docs/DECISIONS.md,
"Several instances".
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from maild.adapters.database.engine import HEAD_REVISION
from maild.adapters.database.instances import Fence, Instances
from maild.adapters.database.store import Store
from maild.errors import InstanceConflict, StoreUnavailable

log = logging.getLogger(__name__)

_TRY_SECONDS = 1.0  # how often a standby tries to take a free role


@dataclass
class Tenure:
    """One holding of a role: its fence (None on SQLite) and when it ends."""

    fence: Fence | None
    ended: threading.Event = field(default_factory=threading.Event)
    renewed_at: float = field(default_factory=time.monotonic)


class RoleKeeper:
    def __init__(
        self,
        store: Store,
        instances: Instances,
        leased: tuple[str, ...],
        everywhere: tuple[str, ...],
        *,
        is_shared: bool,
    ) -> None:
        self.store = store
        self.instances = instances
        self.leased = leased
        self.everywhere = everywhere
        self.is_shared = is_shared
        self.id = uuid.uuid4().hex[:12]
        self.seconds = instances.lease.total_seconds()
        self._tenures: dict[str, Tenure] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._ending = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roles", daemon=True)

    def start(self) -> None:
        """Join the instances and take what roles are free, then keep them."""
        roles = self.everywhere if self.is_shared else (*self.leased, *self.everywhere)
        self.instances.join(
            self.id, socket.gethostname(), os.getpid(), HEAD_REVISION, roles
        )
        log.info("instance %s started", self.id)
        self._round()
        self._thread.start()

    def end_tenures(self) -> None:
        """Tell the roles to finish what they hold in hand; take no more.

        The leases are still renewed until stop(), so that the mail in hand
        is committed under its lease.
        """
        self._ending.set()
        with self._changed:
            for tenure in self._tenures.values():
                tenure.ended.set()
            self._changed.notify_all()

    def stop(self) -> None:
        """End every tenure, give the leases back and leave the instances."""
        self.end_tenures()
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
        try:
            self.instances.leave(self.id)
        except StoreUnavailable as exc:  # the leases expire by themselves
            log.warning("could not give the roles back: %s", exc)
        with self._changed:
            self._tenures.clear()  # holds nothing now (status, metrics)
            self._changed.notify_all()

    def holds(self, role: str) -> bool:
        return role in self._tenures

    def roles(self) -> dict[str, bool]:
        """Every role this instance may run, and whether it runs it now."""
        if not self.is_shared:
            return dict.fromkeys((*self.leased, *self.everywhere), True)
        held = {role: self.holds(role) for role in self.leased}
        return held | dict.fromkeys(self.everywhere, True)

    def run_role(
        self,
        role: str,
        body: Callable[[threading.Event], None],
        stop: threading.Event,
        beat: Callable[[float], None] | None = None,
    ) -> None:
        """Run body(ended) each time this instance holds role, until stop.

        beat(within), when given, is called while this instance waits for the
        role: a standby's loop is well (runtime.watchdog), not stuck.
        """
        while not stop.is_set():
            tenure = self._wait_for(role, stop, beat)
            if tenure is None:
                return
            with self._fenced(tenure):
                body(tenure.ended)

    def as_holder(self, role: str, body: Callable[[], int]) -> int:
        """Run body if this instance holds role (fenced); 0 if it does not."""
        tenure = self._tenures.get(role)
        if tenure is None or tenure.ended.is_set() or self._ending.is_set():
            return 0
        try:
            with self._fenced(tenure):
                return body()
        except StoreUnavailable as exc:  # LeaseLost among them: nothing written
            log.warning("%s: %s", role, exc)
            return 0

    def _fenced(self, tenure: Tenure) -> AbstractContextManager[None]:
        return self.store.fenced(tenure.fence) if tenure.fence else nullcontext()

    def _wait_for(
        self,
        role: str,
        stop: threading.Event,
        beat: Callable[[float], None] | None = None,
    ) -> Tenure | None:
        with self._changed:
            while not stop.is_set() and not self._ending.is_set():
                tenure = self._tenures.get(role)
                if tenure is not None and not tenure.ended.is_set():
                    return tenure
                if beat is not None:
                    beat(2 * _TRY_SECONDS)
                self._changed.wait(_TRY_SECONDS)
        return None

    def _run(self) -> None:
        beaten = time.monotonic()
        while not self._stop.wait(min(_TRY_SECONDS, self.seconds / 3)):
            if time.monotonic() - beaten >= self.seconds / 3:
                beaten = time.monotonic()
                self._beat()
            self._round()

    def _beat(self) -> None:
        try:
            if not self.instances.beat(self.id):
                roles = self.everywhere if self.is_shared else ()
                self.instances.join(
                    self.id, socket.gethostname(), os.getpid(), HEAD_REVISION, roles
                )
        except StoreUnavailable as exc:
            log.warning("heartbeat: database unavailable (%s)", exc)

    def _round(self) -> None:
        """Renew what is held (due), take what is free, give up what is lost."""
        for role in self.leased:
            if self._stop.is_set():
                return
            tenure = self._tenures.get(role)
            try:
                if tenure is None:
                    if not self._ending.is_set():
                        self._take(role)
                elif tenure.fence is not None:
                    self._renew(role, tenure, tenure.fence)
            except StoreUnavailable as exc:
                log.warning("%s lease: database unavailable (%s)", role, exc)
                if tenure is not None and self._is_running_out(tenure):
                    self._give_up(role, "could not be renewed in time")

    def _take(self, role: str) -> None:
        if not self.is_shared:
            self._hold(role, Tenure(None))
            return
        fence = self.instances.take(role, self.id)
        if fence is not None:
            log.info("role %s taken (epoch %s)", role, fence.epoch)
            self._hold(role, Tenure(fence))

    def _renew(self, role: str, tenure: Tenure, fence: Fence) -> None:
        if time.monotonic() - tenure.renewed_at < self.seconds / 3:
            return
        if self.instances.renew(fence):
            tenure.renewed_at = time.monotonic()
        else:
            self._give_up(role, "expired or taken over")

    def _is_running_out(self, tenure: Tenure) -> bool:
        return time.monotonic() - tenure.renewed_at > self.seconds * 2 / 3

    def _hold(self, role: str, tenure: Tenure) -> None:
        with self._changed:
            self._tenures[role] = tenure
            self._changed.notify_all()

    def _give_up(self, role: str, why: str) -> None:
        log.warning("role %s given up: its lease %s", role, why)
        with self._changed:
            tenure = self._tenures.pop(role, None)
            if tenure is not None:
                tenure.ended.set()
            self._changed.notify_all()


@contextmanager
def single_instance(database_path: Path) -> Iterator[None]:
    """Hold the lock file next to a SQLite database for as long as this runs.

    An OS lock (flock): a second `maild run` on the same database is refused,
    and the OS lets go of it when the process ends, however it ends.
    """
    path = database_path.with_name(database_path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise InstanceConflict(
                f"another maild (pid {holder}) runs on {database_path}: SQLite is "
                f"one instance ({path} is locked); run several on PostgreSQL"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
