"""The mailbox path: mail APPENDed to a real Dovecot inbox, the real daemon
watching it with IDLE (or polling), confirmations in the SMTP sink; on SQLite
and on PostgreSQL."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer, capabilities
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def new_mail(subject: str, sender: str = "marie@example.com", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.com")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Application: Messagerie\n\nJe ne reçois plus de courrier.\n")
    return msg.as_bytes(policy=SMTP)


def start(
    tmp_path: Path,
    sink: SmtpSink,
    server: DovecotServer,
    database_url: str = "",
    poll: int = 60,
) -> Daemon:
    extra = server.config_section(poll_seconds=poll)
    return start_daemon(tmp_path, sink.port, extra=extra, database_url=database_url)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("fresh_postgres_db"))


@pytest.fixture
def daemon(
    tmp_path: Path, smtp_sink: SmtpSink, clean_mailbox: DovecotServer, database_url: str
) -> Iterator[Daemon]:
    handle = start(tmp_path, smtp_sink, clean_mailbox, database_url)
    try:
        yield handle
    finally:
        assert handle.stop() == 0, handle.log.read_text()


def test_mailbox_mail_becomes_tickets_and_leaves_the_inbox(
    daemon: Daemon, smtp_sink: SmtpSink, clean_mailbox: DovecotServer
) -> None:
    server = clean_mailbox
    server.append(HELPDESK, new_mail("Messagerie en panne"))
    server.append(HELPDESK, new_mail("Absent", Auto_Submitted="auto-replied"))
    server.append(HELPDESK, new_mail("Bounce", sender="MAILER-DAEMON@example.com"))
    server.append(HELPDESK, new_mail("Gagnez un iPhone", sender="spam@elsewhere.test"))
    smtp_sink.wait_for(lambda m: "marie@example.com" in m.rcpt_tos, timeout=30)
    wait_until(lambda: not server.list_uids(HELPDESK, "INBOX"))
    assert len(server.list_uids(HELPDESK, "maild/done")) == 3
    assert len(server.list_uids(HELPDESK, "maild/quarantine")) == 1
    (ticket,) = daemon.maild("tickets", "list", "--json")
    assert ticket["subject"] == "Messagerie en panne"
    stats = daemon.maild("stats", "--json")
    assert (stats["quarantine"], stats["ignored"]) == (1, 2)
    # Nothing was marked read by maild before it moved the mail.
    flags = [f for _, f in server.fetch_all(HELPDESK, "maild/done").values()]
    assert all(b"\\Seen" not in f for f in flags)


def test_mail_arriving_while_idle_is_confirmed_quickly(
    daemon: Daemon, smtp_sink: SmtpSink, clean_mailbox: DovecotServer, database_url: str
) -> None:
    count = 50 if not database_url else 10
    delays = []
    for n in range(count):
        requester = f"user{n}@example.com"
        start_at = time.monotonic()
        clean_mailbox.append(HELPDESK, new_mail(f"Latence {n}", sender=requester))
        smtp_sink.wait_for(lambda m, r=requester: r in m.rcpt_tos, timeout=30)
        delays.append(time.monotonic() - start_at)
    print(
        f"\nIMAP APPEND->confirmation over {count} mails "
        f"({'postgresql' if database_url else 'sqlite'}): median "
        f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    assert len(daemon.maild("tickets", "list", "--json")) == count


def test_polling_takes_over_without_idle(
    tmp_path: Path, smtp_sink: SmtpSink, dovecot_no_idle: DovecotServer
) -> None:
    server = dovecot_no_idle
    server.fresh_mailbox(HELPDESK)
    handle = start(tmp_path, smtp_sink, server, poll=1)
    try:
        # its first poll done, the daemon is quiet: the mail arrives between polls
        wait_until(lambda: "maild running" in handle.log.read_text(), 30, "first poll")
        server.append(HELPDESK, new_mail("Sans IDLE"))
        smtp_sink.wait_for(lambda m: "marie@example.com" in m.rcpt_tos, timeout=30)
        wait_until(lambda: not server.list_uids(HELPDESK, "INBOX"))
    finally:
        assert handle.stop() == 0, handle.log.read_text()
    assert "IDLE" not in capabilities(server)
    assert "idle=False" in handle.log.read_text()
