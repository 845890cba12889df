"""`maild doctor` against the real parts: Dovecot, the SMTP sink, SQLite, a
small file system of its own; one fault at a time, each named by its check."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from maild.adapters.database.engine import alembic_config
from tests.support.daemon import run_maild, write_config
from tests.support.desk import Desk
from tests.support.dovecot import DovecotServer
from tests.support.smtp_sink import SmtpSink, free_port

pytestmark = pytest.mark.integration


def doctor(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run `maild doctor --json`; return its status and the checks by name."""
    done = run_maild(config, "doctor", "--json")
    checks = json.loads(done.stdout)["checks"]
    assert all(set(c) >= {"name", "status", "detail"} for c in checks)
    return done.returncode, {c["name"]: c for c in checks}


def not_ok(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items() if c["status"] != "ok"}


def set_up(
    directory: Path, sink_port: int | None, imap: str = "", extra: str = ""
) -> Path:
    """A configuration and its migrated database, as after a first start."""
    config, _ = write_config(directory, sink_port=sink_port, extra=imap + extra)
    done = run_maild(config, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    return config


def test_a_healthy_desk_is_all_ok(
    tmp_path: Path, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> None:
    config = set_up(tmp_path, smtp_sink.port, clean_mailbox.config_section())
    status, checks = doctor(config)
    assert not_ok(checks) == {}, checks
    assert status == 0
    assert list(checks) == [
        "config", "database", "storage", "imap", "smtp", "outbox", "quarantine",
        "sla",
    ]  # fmt: skip
    assert "taken" in checks["smtp"]["detail"]  # MAIL FROM and RCPT TO went
    assert smtp_sink.messages == []  # and nothing was sent
    text = run_maild(config, "doctor")
    assert text.returncode == 0
    assert [line.split()[0] for line in text.stdout.splitlines()] == ["OK"] * 8


def test_a_wrong_mailbox_password_fails_imap(
    tmp_path: Path, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> None:
    imap = clean_mailbox.config_section().replace(
        'password = "secret"', 'password = "wrong"'
    )
    status, checks = doctor(set_up(tmp_path, smtp_sink.port, imap))
    assert not_ok(checks) == {"imap": "fail"}
    assert "login failed" in checks["imap"]["detail"]
    assert "imap.password" in checks["imap"]["fix"]
    assert status == 2


def test_a_mailbox_down_fails_imap(
    tmp_path: Path, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> None:
    imap = clean_mailbox.config_section().replace(
        f"port = {clean_mailbox.port}", f"port = {free_port()}"
    )
    status, checks = doctor(set_up(tmp_path, smtp_sink.port, imap))
    assert not_ok(checks) == {"imap": "fail"}
    assert "connect failed" in checks["imap"]["detail"]
    assert status == 2


def test_a_relay_down_fails_smtp(tmp_path: Path) -> None:
    status, checks = doctor(set_up(tmp_path, free_port()))
    assert not_ok(checks) == {"smtp": "fail"}
    assert "connect failed" in checks["smtp"]["detail"]
    assert status == 2


def test_a_relay_that_refuses_the_pool_fails_at_rcpt(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse("techniciens@example.com", code=550)
    status, checks = doctor(set_up(tmp_path, smtp_sink.port))
    assert not_ok(checks) == {"smtp": "fail"}
    assert "rcpt_to failed" in checks["smtp"]["detail"]
    assert status == 2


def test_a_schema_behind_fails_database(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    command.upgrade(alembic_config(f"sqlite:///{tmp_path / 'maild.db'}"), "0003")
    status, checks = doctor(config)
    assert checks["database"]["status"] == "fail"
    assert "schema at 0003" in checks["database"]["detail"]
    assert checks["database"]["fix"] == "run `maild db upgrade`"
    assert status == 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB file system (tmpfs), nearly full."""
    mount = tmp_path / "var"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * (7 * 1024 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_nearly_full_fails_storage(tmp_path: Path, small_disk: Path) -> None:
    status, checks = doctor(set_up(tmp_path, None))
    assert not_ok(checks) == {"storage": "fail"}
    assert str(small_disk) in checks["storage"]["detail"]
    assert status == 2


def test_an_old_pending_notification_warns_outbox(tmp_path: Path) -> None:
    desk = Desk(tmp_path, now=datetime.now(UTC) - timedelta(minutes=30))
    try:
        desk.open()  # its notifications queued, never sent: no sender runs
    finally:
        desk.close()
    status, checks = doctor(desk.config)
    assert not_ok(checks) == {"outbox": "warn"}
    assert "the oldest pending for 30 min" in checks["outbox"]["detail"]
    assert status == 1
