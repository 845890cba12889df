"""The intake story over TLS: a mail in a real Dovecot's inbox becomes a ticket
and its confirmation when maild reads the mailbox over implicit TLS (993-style
port) or STARTTLS, checking the server's certificate against the test CA; a
certificate that does not match is refused with the host and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_imap_path import new_mail
from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import SmtpSink
from tests.support.tls import Certificates
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def imap_section(server: DovecotServer, *, host: str, port: int, mode: str,
                 ca_file: Path | None) -> str:  # fmt: skip
    tls = "tls = true" if mode == "implicit" else "tls = false\nstarttls = true"
    ca = f'ca_file = "{ca_file}"\n' if ca_file else ""
    return (
        f'\n[imap]\nhost = "{host}"\nport = {port}\n{tls}\n{ca}'
        f'username = "{HELPDESK}"\npassword = "{server.users[HELPDESK]}"\n'
    )


@pytest.fixture
def tls_mailbox(dovecot_tls: DovecotServer) -> DovecotServer:
    dovecot_tls.fresh_mailbox(HELPDESK)
    return dovecot_tls


@pytest.fixture
def stopping() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        assert daemon.stop() == 0, daemon.log.read_text()


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_mail_read_over_tls_becomes_a_ticket_and_is_confirmed(
    mode: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    tls_mailbox: DovecotServer,
    test_ca: Certificates,
    stopping: list[Daemon],
) -> None:
    server = tls_mailbox
    port = server.imaps_port if mode == "implicit" else server.port
    extra = imap_section(server, host="localhost", port=port, mode=mode,
                         ca_file=test_ca.ca)  # fmt: skip
    stopping.append(start_daemon(tmp_path, smtp_sink.port, extra=extra))
    server.append(HELPDESK, new_mail("Imprimante en panne (TLS)"))
    smtp_sink.wait_for(lambda m: "marie@example.com" in m.rcpt_tos, timeout=30)
    wait_until(lambda: not server.list_uids(HELPDESK, "INBOX"))
    (ticket,) = stopping[0].maild("tickets", "list", "--json")
    assert ticket["subject"] == "Imprimante en panne (TLS)"
    logins = [line for line in server.log().splitlines()
              if "Login: user=<helpdesk@example.com>" in line]  # fmt: skip
    assert any(", TLS" in line for line in logins), logins  # maild's, encrypted


@pytest.mark.parametrize(
    ("host", "ca", "reason"),
    [
        ("127.0.0.1", "ca", "IP address mismatch"),  # the certificate is for localhost
        ("localhost", "other_ca", "self-signed certificate in certificate chain"),
        ("localhost", None, "self-signed certificate in certificate chain"),
    ],
)
def test_a_certificate_that_does_not_match_is_refused_with_the_reason(
    host: str,
    ca: str | None,
    reason: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    tls_mailbox: DovecotServer,
    test_ca: Certificates,
    stopping: list[Daemon],
) -> None:
    server = tls_mailbox
    ca_file = getattr(test_ca, ca) if ca else None
    extra = imap_section(server, host=host, port=server.imaps_port,
                         mode="implicit", ca_file=ca_file)  # fmt: skip
    uid = server.append(HELPDESK, new_mail("Ne doit pas partir"))
    daemon = start_daemon(tmp_path, smtp_sink.port, extra=extra)
    stopping.append(daemon)
    expected = f"certificate of {host}:{server.imaps_port} refused: "
    wait_until(lambda: expected in daemon.log.read_text(), 30, "the refusal")
    line = next(x for x in daemon.log.read_text().splitlines() if expected in x)
    assert reason in line
    assert "ERROR" in line
    hint = "connect by a name" if "mismatch" in reason else "set imap.ca_file"
    assert hint in line
    assert server.list_uids(HELPDESK, "INBOX") == [uid]  # nothing read, nothing lost
    assert not smtp_sink.messages
