"""Test support: several maild instances on one PostgreSQL, mailbox and relay. I/O.

`Cluster(root, url, server, sink_port).start(name)` runs `maild run` in
root/name on a configuration of its own (the database, the Dovecot mailbox,
the relay, a short lease and an SLA whose timers fire within seconds), all
sharing root/shared as the storage folder; `holder(role)` names the instance
that holds a role by the database; `send(raw, n)` hands a mail to an intake
as an MTA that lists them all would. Used by tests/integration and bench/.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from tests.support.crash import Database, kill
from tests.support.daemon import ROOT, Daemon, is_listening, write_config
from tests.support.dovecot import DovecotServer
from tests.support.waiting import wait_until

LEASE_SECONDS = 3
SLA = """
[sla]
timezone = "UTC"
business_hours = "00:00-23:59"
business_days = "mon-sun"
callback = { high = "1h", medium = "20s", low = "8h" }
"""
TIMERS = ("reminder", "breach")  # what the 20 s call-back deadline fires


@dataclass
class Cluster:
    """maild instances on one database, mailbox, relay and storage folder."""

    root: Path
    url: str
    server: DovecotServer
    sink_port: int
    lease_seconds: int = LEASE_SECONDS
    daemons: dict[str, Daemon] = field(default_factory=dict)

    def start(self, name: str) -> Daemon:
        """Start (or start again) the instance called name."""
        directory = self.root / name
        if not directory.exists():
            directory.mkdir()
            (directory / "var").symlink_to(self.root / "shared", True)
        config, port = write_config(
            directory,
            sink_port=self.sink_port,
            database_url=self.url,
            extra=self.server.config_section(poll_seconds=5) + SLA,
        )
        config.write_text(
            config.read_text().replace(
                "[database]\n", f"[database]\nlease_seconds = {self.lease_seconds}\n"
            )
        )
        log = directory / "maild.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "maild", "--config", str(config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        daemon = Daemon(config, process, port, log)
        self.daemons[name] = daemon
        wait_until(lambda: is_listening(process, port, log), 60, f"{name}'s intake")
        return daemon

    def running(self) -> list[Daemon]:
        return [d for d in self.daemons.values() if d.process is not None]

    def holder(self, role: str) -> str | None:
        """The name of the instance holding role now, by the database."""
        db = Database(self.url)
        try:
            with db.engine.connect() as conn:
                pid = conn.execute(
                    text(
                        "SELECT i.pid FROM leases l JOIN instances i ON i.id = l.holder"
                        " WHERE l.role = :role AND l.expires_at > clock_timestamp()"
                    ),
                    {"role": role},
                ).scalar_one_or_none()
        finally:
            db.close()
        return next(
            (
                name
                for name, d in self.daemons.items()
                if d.process is not None and d.process.pid == pid
            ),
            None,
        )

    def send(self, raw: bytes, first: int) -> None:
        """Hand a mail to one instance's intake, as an MTA that lists them all."""
        while True:
            daemons = self.running()
            for k in range(len(daemons)):
                daemon = daemons[(first + k) % len(daemons)]
                try:
                    with smtplib.SMTP("127.0.0.1", daemon.intake_port, timeout=3) as c:
                        c.sendmail("x@example.com", ["helpdesk@example.com"], raw)
                        return
                except (OSError, smtplib.SMTPException):
                    continue  # down, paused or busy: the next one

    def stop_all(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process is not None:
                os.kill(daemon.process.pid, signal.SIGCONT)
                kill(daemon)
