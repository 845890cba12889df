"""Wiring of the purge: the daemon's daily job and `maild purge`. I/O.

The daemon runs the purge once a day on the scheduler's thread; between two
batches it pauses as long as the batch took, so the intake and the SLA tick,
which queue on the same write lock, always get their turn: a first purge of
a large backlog takes twice as long and stalls no mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from maild.adapters.database.store import Store
from maild.adapters.outgoing.relay import EmlDirectory
from maild.app.purge import Purge
from maild.config import Settings
from maild.core.retention import Purged
from maild.errors import TransientError

log = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 0.5


def yielding_pause() -> Callable[[], None]:
    """A between-batches call that pauses as long as the batch before it took."""
    last = time.monotonic()

    def pause() -> None:
        nonlocal last
        took = time.monotonic() - last
        time.sleep(min(took, MAX_PAUSE_SECONDS))  # a duty cycle, not a wait for
        last = time.monotonic()

    return pause


def kept_copies(settings: Settings) -> EmlDirectory:
    """The .eml folder of a desk without a relay (sender_wiring writes it); a
    desk that has one since may still hold copies from before."""
    return EmlDirectory(settings.eml_dir)


def purge(
    settings: Settings, store: Store, now: datetime, *, dry_run: bool = False
) -> Purged:
    """Run the purge at now (`maild purge`), yielding to a running daemon."""
    return Purge(
        settings.retention.policy,
        store,
        between_batches=yielding_pause(),
        forget_sent=kept_copies(settings).forget,
    ).run(now, dry_run=dry_run)


def daily_purge(
    settings: Settings, store: Store, clock: Callable[[], datetime]
) -> Callable[[], None]:
    """The daemon's daily job."""

    def run() -> None:
        try:
            purge(settings, store, clock())
        except TransientError as exc:
            log.warning("purge: %s; will try again tomorrow", exc)

    return run
