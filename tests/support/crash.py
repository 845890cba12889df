"""Test support for the guarantees: the real daemon on a mailbox, killed and restarted.

`start_on_mailbox(...)` runs `maild run` on the private Dovecot (IMAP intake)
and the SMTP sink; `kill(daemon)` ends it with SIGKILL, as a crash would;
`Database(url)` reads what the daemon wrote (mails, outbox rows, tickets) so a
test can check exact invariants; `HoldingSink` is an SMTP sink that can keep a
message's DATA unanswered until told, to crash the daemon in the middle of a
delivery. Does I/O.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from maild.adapters.database.engine import make_engine
from maild.adapters.database.models import MailRow, OutboxRow, TicketRow
from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import DovecotServer
from tests.support.smtp_sink import ReceivedMail, free_port

LIMITS = """
[limits]
handling_attempts = {attempts}
"""


def new_mail(n: int, subject: str = "", body: str = "") -> bytes:
    """A new-ticket mail from its own requester (user<n>), so no cap applies."""
    msg = EmailMessage()
    msg["From"] = f"user{n}@example.com"
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = subject or f"Rafale {n}"
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    msg.set_content(body or f"Application: Messagerie\n\nPanne numéro {n}.\n")
    return msg.as_bytes(policy=SMTP)


def start_on_mailbox(
    tmp_path: Path,
    sink_port: int,
    server: DovecotServer,
    database_url: str = "",
    attempts: int = 3,
) -> Daemon:
    """Run the daemon on the helpdesk mailbox of server."""
    extra = server.config_section() + LIMITS.format(attempts=attempts)
    return start_daemon(tmp_path, sink_port, extra=extra, database_url=database_url)


class Started:
    """Every daemon a test started, so that none outlives a failing test."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def add(self, daemon: Daemon) -> Daemon:
        self.daemons.append(daemon)
        return daemon

    def on_mailbox(self, *args: Any, **options: Any) -> Daemon:
        """start_on_mailbox(...), remembered."""
        return self.add(start_on_mailbox(*args, **options))

    def kill_all(self) -> None:
        for daemon in self.daemons:
            if daemon.process is not None:
                kill(daemon)


def kill(daemon: Daemon) -> None:
    """SIGKILL the daemon and its children: no handler runs, nothing is flushed.

    The whole process group, as systemd kills a service's processes (or as a
    power cut ends them): the outbox sender, a child, dies mid-conversation too.
    """
    assert daemon.process is not None
    os.killpg(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(30)
    daemon.process = None


def sqlite_url(tmp_path: Path) -> str:
    """The URL of the database start_daemon's configuration uses by default."""
    return f"sqlite:///{tmp_path / 'maild.db'}"


class Database:
    """Read-only views of what the daemon committed."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def mails(self) -> list[MailRow]:
        return self._all(MailRow)

    def outbox(self) -> list[OutboxRow]:
        return self._all(OutboxRow)

    def all_sent(self, count: int) -> bool:
        """Tell whether exactly count notifications are queued, all sent."""
        rows = self.outbox()
        return len(rows) == count and all(row.state == "sent" for row in rows)

    def tickets(self) -> list[TicketRow]:
        return self._all(TicketRow)

    def _all(self, model: Any) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.scalars(select(model).order_by(model.id)))

    def attempts(self) -> list[int]:
        return [row.attempts for row in self.mails()]


def message_id(message: EmailMessage) -> str:
    return str(message["Message-ID"]).strip().strip("<>")


class HoldingSink:
    """An SMTP sink that records every message and can hold one DATA unanswered.

    `hold_next()` makes the next DATA be recorded and then left without a
    reply until `release()`: the sender cannot know it was received, as when
    a crash happens between the relay's acceptance and the 250 reaching maild.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, bytes]] = []  # (Message-ID, data)
        self._lock = threading.Condition()
        self._hold = False
        self.held = threading.Event()  # set once a DATA is being held
        self._released = threading.Event()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._released.set()
        self._controller.stop()

    def hold_next(self) -> None:
        with self._lock:
            self._hold = True

    def release(self) -> None:
        self._released.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.original_content or envelope.content)
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append((message_id(parsed), data))
            self._lock.notify_all()
            hold, self._hold = self._hold, False
        if hold:
            self.held.set()
            while not self._released.is_set():
                await asyncio.sleep(0.05)  # keep the event loop free meanwhile
        return "250 Message accepted"

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(mid for mid, _ in self.received)

    def copies(self, mid: str) -> list[bytes]:
        with self._lock:
            return [data for m, data in self.received if m == mid]


def to(address: str) -> Callable[[ReceivedMail], bool]:
    """A sink predicate: the mail went to address."""
    return lambda m: address in m.rcpt_tos


@pytest.fixture
def started() -> Iterator[Started]:
    """Daemons started by the test; any left running at the end is killed."""
    handle = Started()
    yield handle
    handle.kill_all()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(sqlite_url(tmp_path))
    yield db
    db.close()
