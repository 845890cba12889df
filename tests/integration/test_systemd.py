"""systemd: the unit file as systemd-analyze sees it, and the notify protocol
as a real `maild run` speaks it to a datagram socket the test binds (what
systemd does with NOTIFY_SOCKET and WATCHDOG_USEC).

The daemon runs under the kernel's memory-deny-write-execute (prctl
PR_SET_MDWE, what the unit's MemoryDenyWriteExecute=yes asks of systemd), so
the test also shows the stack lives with it. Its mailbox is reached through a
gate the test opens: READY must wait for it. Its store is stuck by a write
lock the test holds on the SQLite file: the watchdog pings must stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "maild.service"
EXPOSURE_LIMIT = 3.0
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
WATCHDOG_SECONDS = 4  # pings every second; a loop 2 s late stops them


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    message = "systemd-analyze is missing: apt-get install systemd"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _unit_here(tmp_path: Path) -> Path:
    """The unit with its binary pointed at one that exists here (verify
    checks that ExecStart's binary does)."""
    true = shutil.which("true") or "/bin/true"
    text = UNIT.read_text().replace("/opt/maild/.venv/bin/maild", true)
    unit = tmp_path / "maild.service"
    unit.write_text(text)
    return unit


def test_the_unit_verifies_and_its_exposure_is_low(tmp_path: Path) -> None:
    analyze = _analyze()
    unit = _unit_here(tmp_path)
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert "Type=notify" in UNIT.read_text()
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    score = float(match.group(1))
    print(f"systemd-analyze security exposure: {score}")
    assert score < EXPOSURE_LIMIT, security.stdout


class NotifyListener:
    """The service manager's end: a datagram socket, the messages in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def receive(self, timeout: float) -> str | None:
        """The next message, or None after timeout seconds of silence."""
        self.socket.settimeout(timeout)
        try:
            data = self.socket.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append((time.monotonic(), data))
        return data

    def wait_for(self, line: str, timeout: float) -> str:
        """Read until a message has a line that starts with line; return it."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and any(
                got.startswith(line) for got in message.splitlines()
            ):
                return message
        raise TimeoutError(f"{line} not received within {timeout} s")

    def silent_for(self, line: str, quiet: float, timeout: float) -> bool:
        """Read until line has not come for `quiet` seconds; False at timeout."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - last >= quiet:
                return True
            message = self.receive(min(0.2, max(deadline - time.monotonic(), 0.01)))
            if message is not None and line in message.splitlines():
                last = time.monotonic()
        return False

    def lines(self) -> list[str]:
        return [line for _at, m in self.messages for line in m.splitlines()]

    def close(self) -> None:
        self.socket.close()


class GatedProxy:
    """A TCP relay to the mailbox that holds every connection until opened."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.gate = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarded = 0
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.gate.wait()
        server = socket.create_connection(self.target)
        self._sockets.append(server)
        self.forwarded += 1
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def close(self) -> None:
        self.gate.set()
        for sock in self._sockets:
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # one side closed: the relay ends
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


def _deny_write_execute() -> None:
    """In the daemon's process before exec: no memory writable and executable."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def _mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "marie@example.com"
    msg["To"] = HELPDESK
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    msg.set_content("Application: Messagerie\n\nPlus rien ne marche.\n")
    return msg.as_bytes(policy=SMTP)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    notify = NotifyListener(tmp_path / "notify.sock")
    yield notify
    notify.close()


@pytest.fixture
def proxy(clean_mailbox: DovecotServer) -> Iterator[GatedProxy]:
    gated = GatedProxy((clean_mailbox.host, clean_mailbox.port))
    yield gated
    gated.close()


def _start(
    tmp_path: Path, sink: SmtpSink, server: DovecotServer, proxy: GatedProxy,
    listener: NotifyListener,
) -> Daemon:  # fmt: skip
    imap = server.config_section().replace(
        f"port = {server.port}", f"port = {proxy.port}"
    )
    return start_daemon(
        tmp_path,
        sink.port,
        extra=imap,
        environment={
            "NOTIFY_SOCKET": str(listener.path),
            "WATCHDOG_USEC": str(WATCHDOG_SECONDS * 1_000_000),
        },
        preexec=_deny_write_execute,
    )


def test_ready_waits_for_the_mailbox_pings_stop_when_stuck_stopping_on_term(
    tmp_path: Path,
    smtp_sink: SmtpSink,
    clean_mailbox: DovecotServer,
    proxy: GatedProxy,
    listener: NotifyListener,
) -> None:
    daemon = _start(tmp_path, smtp_sink, clean_mailbox, proxy, listener)
    try:
        # The SMTP intake listens, the mailbox is out of reach: not ready.
        listener.wait_for("WATCHDOG=1", 10)
        assert listener.silent_for("READY=1", quiet=2, timeout=10)
        assert any(line.startswith("STATUS=starting") for line in listener.lines())
        assert proxy.forwarded == 0

        proxy.gate.set()
        ready = listener.wait_for("READY=1", 30)
        assert proxy.forwarded >= 1  # READY came once the mailbox answered
        assert any(line.startswith("STATUS=") for line in ready.splitlines())
        listener.wait_for("WATCHDOG=1", 5)

        # A write lock on the store: the IMAP loop hangs on the next mail.
        database = tmp_path / "maild.db"
        lock = sqlite3.connect(database, isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        try:
            clean_mailbox.append(HELPDESK, _mail("Stuck store"))
            assert listener.silent_for("WATCHDOG=1", quiet=3, timeout=20), (
                "the watchdog kept pinging while the IMAP loop was stuck"
            )
            assert clean_mailbox.list_uids(HELPDESK) != []  # not handled
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        listener.wait_for("WATCHDOG=1", 40)  # moving again: pings resume
        wait_until(lambda: not clean_mailbox.list_uids(HELPDESK), 30, "the mail")
        assert "stuck; systemd pings stopped" in daemon.log.read_text()
        listener.wait_for("STATUS=1 mails handled since start", 15)

        assert daemon.stop() == 0
        listener.wait_for("STOPPING=1", 5)  # sent before the process ended
    finally:
        daemon.stop()
