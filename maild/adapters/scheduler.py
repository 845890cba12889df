"""The SLA tick: APScheduler 3 calls the service with the injected clock. I/O.

One periodic job, `max_instances=1`, in the calendar's time zone, first run at
once. APScheduler times the ticks by the wall clock; what is due is asked of
the service at the injected clock's `now`. It decides
nothing: the database says what is due (service.check_sla). APScheduler's own
job store is in memory, so several processes never share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

TICK_SECONDS = 30


class SlaTicker:
    def __init__(
        self,
        check_sla: Callable[[datetime], int],
        clock: Callable[[], datetime],
        timezone: str,
        seconds: int = TICK_SECONDS,
    ) -> None:
        self.check_sla = check_sla
        self.clock = clock
        self.scheduler = BackgroundScheduler(timezone=timezone)
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=seconds,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            id="sla",
        )

    def tick(self) -> None:
        """Run one SLA check at the injected clock's now."""
        fired = self.check_sla(self.clock())
        if fired:  # each fired timer has its line at INFO
            log.debug("sla: %s timer(s) fired", fired)

    def add_daily(self, job_id: str, call: Callable[[], None], at: str) -> None:
        """Run call once a day at HH:MM in the calendar's time zone (the purge)."""
        hour, minute = (int(part) for part in at.split(":"))
        self.scheduler.add_job(
            call,
            "cron",
            hour=hour,
            minute=minute,
            max_instances=1,
            coalesce=True,
            id=job_id,
        )

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
