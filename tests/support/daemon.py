"""Test support: the real daemon in a subprocess, on a config of its own. I/O.

`start_daemon(tmp_path, sink_port, ...)` writes a configuration (SQLite in
tmp_path, SMTP intake on a free port, relay = the test sink), runs
`python -m maild run`, waits until the intake answers, and returns a handle
that stops it with SIGTERM. `maild(...)` runs one CLI command on the same
configuration and returns its parsed JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.smtp_sink import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[helpdesk]
tag = "HD"
language = "{language}"
accepted_domains = {domains}
incident_address = "helpdesk@example.com"
request_address = "demandes@example.com"
pool_address = "techniciens@example.com"
technicians = ["alice@example.com", "bob@example.com"]
supervisors = ["chef@example.com"]

[smtp_intake]
listen = "127.0.0.1:{intake_port}"

[database]
url = "{database_url}"

[storage]
dir = "var"

{extra}
"""

RELAY = """
[smtp]
host = "127.0.0.1"
port = {port}
from_address = "helpdesk@example.com"
"""


@dataclass
class Daemon:
    config: Path
    process: subprocess.Popen[bytes] | None
    intake_port: int
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; return the exit status."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self.process = None
        return status

    def maild(self, *args: str) -> Any:
        """Run one `maild` command on this configuration; parse its JSON."""
        done = run_maild(self.config, *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def send(
        self,
        raw: bytes,
        sender: str = "marie@example.com",
        recipients: tuple[str, ...] = ("helpdesk@example.com",),
    ) -> None:
        import smtplib

        with smtplib.SMTP("127.0.0.1", self.intake_port, timeout=30) as client:
            client.sendmail(sender, list(recipients), raw)


def write_config(
    directory: Path,
    *,
    sink_port: int | None,
    language: str = "fr",
    domains: str = '["example.com"]',
    database_url: str = "",
    extra: str = "",
) -> tuple[Path, int]:
    intake_port = free_port()
    relay = RELAY.format(port=sink_port) if sink_port is not None else ""
    config = directory / "maild.toml"
    config.write_text(
        CONFIG.format(
            language=language,
            domains=domains,
            intake_port=intake_port,
            database_url=database_url or "sqlite:///maild.db",
            extra=relay + extra,
        ),
        encoding="utf-8",
    )
    return config, intake_port


def run_maild(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maild", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def start_daemon(
    directory: Path,
    sink_port: int | None,
    *,
    environment: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    **options: Any,
) -> Daemon:
    """Start `maild run`; environment adds variables, preexec runs in the child."""
    config, port = write_config(directory, sink_port=sink_port, **options)
    if options.get("database_url", "").startswith("postgresql"):
        done = run_maild(config, "db", "upgrade")  # run migrates SQLite only
        assert done.returncode == 0, done.stderr
    log = directory / "maild.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,  # its own process group, for crash.kill
            preexec_fn=preexec,
        )
    daemon = Daemon(config, process, port, log)
    try:
        wait_until(lambda: is_listening(process, port, log), 60, "the intake")
    except TimeoutError:
        daemon.stop()
        raise RuntimeError(
            "maild did not open its intake:\n" + log.read_text()
        ) from None
    return daemon


def is_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """Tell whether the daemon's intake accepts connections; raise if it died."""
    if process.poll() is not None:
        raise RuntimeError("maild exited at start:\n" + log.read_text())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
