"""OAuth2 logins end to end: a token endpoint started here on 127.0.0.1 issues
signed JWTs, a real Dovecot validates them locally (oauth2 passdb), and an SMTP
sink takes mail only after AUTH XOAUTH2 with a valid one. maild reads a mail
and delivers its confirmation with each grant: client credentials (with a
secret, and with a certificate's signed assertion), refresh
token (rotated by the endpoint, rewritten in its file), token_command."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_doctor import doctor
from tests.integration.test_imap_path import new_mail
from tests.support.daemon import Daemon, start_daemon
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import SmtpSink
from tests.support.tls import Certificates
from tests.support.token_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    TokenEndpoint,
    is_valid_jwt,
    make_client_certificate,
    make_jwt,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def oauth2_mailbox(dovecot_oauth2: DovecotServer) -> DovecotServer:
    dovecot_oauth2.fresh_mailbox(HELPDESK)
    return dovecot_oauth2


@pytest.fixture
def xoauth2_sink(test_ca: Certificates) -> Iterator[SmtpSink]:
    """A relay that takes mail only after STARTTLS, then AUTH XOAUTH2 with a
    valid JWT."""
    sink = SmtpSink(
        token_check=lambda user, token: is_valid_jwt(token, user),
        certificates=test_ca,
    )
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def stopping() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        assert daemon.stop() == 0, daemon.log.read_text()


def oauth2_table(section: str, endpoint: TokenEndpoint, **keys: str) -> str:
    lines = [f"[{section}.oauth2]", 'provider = "custom"',
             f'token_url = "{endpoint.url}"', 'scope = "mail"',
             *(f'{k} = "{v}"' for k, v in keys.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def imap_section(server: DovecotServer, table: str) -> str:
    return (f'\n[imap]\nhost = "{server.host}"\nport = {server.port}\ntls = false\n'
            f'username = "{HELPDESK}"\nauth = "oauth2"\n{table}')  # fmt: skip


def smtp_section(sink: SmtpSink, table: str, ca: Path) -> str:
    return (f'\n[smtp]\nhost = "localhost"\nport = {sink.port}\n'
            f'starttls = true\nca_file = "{ca}"\n'
            f'username = "{HELPDESK}"\nfrom_address = "{HELPDESK}"\n'
            f'auth = "oauth2"\n{table}')  # fmt: skip


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def story(daemon: Daemon, server: DovecotServer, sink: SmtpSink, subject: str) -> None:
    """A mail in the mailbox becomes a ticket, confirmed through the relay."""
    server.append(HELPDESK, new_mail(subject))
    sink.wait_for(lambda m: "marie@example.com" in m.rcpt_tos, timeout=30)
    wait_until(lambda: not server.list_uids(HELPDESK, "INBOX"))
    (ticket,) = daemon.maild("tickets", "list", "--json")
    assert ticket["subject"] == subject


@dataclass
class OAuth2Desk:
    """maild logging in to the OAuth2 Dovecot and the XOAUTH2 relay."""

    directory: Path
    endpoint: TokenEndpoint
    mailbox: DovecotServer
    sink: SmtpSink
    ca: Path
    started: list[Daemon]

    def secret(self, name: str, value: str) -> str:
        return str(secret_file(self.directory, name, value))

    def story(self, subject: str, imap: str, smtp: str) -> Daemon:
        """Start maild with these [imap.oauth2] and [smtp.oauth2] tables, then
        see a mail become a ticket confirmed through the relay."""
        extra = imap_section(self.mailbox, imap) + smtp_section(
            self.sink, smtp, self.ca
        )
        self.started.append(daemon := start_daemon(self.directory, None, extra=extra))
        story(daemon, self.mailbox, self.sink, subject)
        return daemon

    def grants(
        self, subject: str, imap: dict[str, str], smtp: dict[str, str]
    ) -> Daemon:
        """story() with both tables on the test's token endpoint."""
        return self.story(
            subject,
            oauth2_table("imap", self.endpoint, **imap),
            oauth2_table("smtp", self.endpoint, **smtp),
        )


@pytest.fixture
def desk(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    xoauth2_sink: SmtpSink,
    stopping: list[Daemon],
    test_ca: Certificates,
) -> OAuth2Desk:
    return OAuth2Desk(
        tmp_path, token_endpoint, oauth2_mailbox, xoauth2_sink, test_ca.ca, stopping
    )


def test_client_credentials(desk: OAuth2Desk) -> None:
    secret = desk.secret("client-secret", CLIENT_SECRET)
    table = {"client_id": CLIENT_ID, "client_secret_file": secret}
    daemon = desk.grants("Accès VPN refusé", table, table)
    assert desk.endpoint.count("client_credentials") == 2  # one for IMAP, one SMTP
    assert "method=XOAUTH2" in desk.mailbox.log()
    assert CLIENT_SECRET not in daemon.log.read_text()
    # doctor logs in as the daemon does: a token each, TLS checked on the relay
    _, checks = doctor(daemon.config)
    assert checks["imap"]["status"] == "ok", checks["imap"]
    assert "OAuth2" in checks["imap"]["detail"]
    assert checks["smtp"]["status"] == "ok", checks["smtp"]
    assert "XOAUTH2 accepted" in checks["smtp"]["detail"]


def test_client_credentials_with_a_certificate(desk: OAuth2Desk) -> None:
    certificate = make_client_certificate(desk.directory)
    desk.endpoint.certificates[CLIENT_ID] = certificate.der  # the uploaded .cer
    imap = {"client_id": CLIENT_ID,
            "client_certificate_file": str(certificate.combined)}  # fmt: skip
    smtp = {"client_id": CLIENT_ID, "client_certificate_file": str(certificate.cert),
            "client_key_file": str(certificate.key)}  # fmt: skip
    daemon = desk.grants("Certificat de l'imprimante", imap, smtp)
    assert desk.endpoint.count("client_credentials") == 2  # one for IMAP, one SMTP
    assert "method=XOAUTH2" in desk.mailbox.log()
    log = daemon.log.read_text()
    assert certificate.key_pem.splitlines()[1] not in log
    assert "PRIVATE KEY" not in log
    _, checks = doctor(daemon.config)  # check-config signs its own assertion
    assert checks["imap"]["status"] == "ok", checks["imap"]
    assert checks["smtp"]["status"] == "ok", checks["smtp"]


def test_refresh_token_rotated_and_saved(desk: OAuth2Desk) -> None:
    endpoint = desk.endpoint
    secret = desk.secret("client-secret", CLIENT_SECRET)
    imap_rt = Path(desk.secret("imap-refresh", endpoint.new_refresh_token()))
    smtp_rt = Path(desk.secret("smtp-refresh", endpoint.new_refresh_token()))
    first = (imap_rt.read_text(), smtp_rt.read_text())
    daemon = desk.grants(
        "Mot de passe expiré",
        {"client_id": CLIENT_ID, "client_secret_file": secret,
         "refresh_token_file": str(imap_rt)},
        {"client_id": CLIENT_ID, "client_secret_file": secret,
         "refresh_token_file": str(smtp_rt)},
    )  # fmt: skip
    assert endpoint.count("refresh_token") == 2
    # The endpoint rotated both; each file now holds the one it will accept.
    now = (imap_rt.read_text().strip(), smtp_rt.read_text().strip())
    assert now[0] != first[0].strip()
    assert now[1] != first[1].strip()
    assert all(token in endpoint.refresh_tokens for token in now)
    assert imap_rt.stat().st_mode & 0o777 == 0o600
    assert "rotated refresh token saved" in daemon.log.read_text()
    assert now[0] not in daemon.log.read_text()


def test_token_command(desk: OAuth2Desk) -> None:
    script = desk.directory / "print-token"
    jwt = make_jwt(HELPDESK, 3600)
    script.write_text(f"#!/bin/sh\necho '{jwt}'\n")
    script.chmod(0o755)
    table = f'[imap.oauth2]\nprovider = "custom"\ntoken_command = "{script}"\n'
    daemon = desk.story("Écran noir", table, table.replace("[imap.", "[smtp."))
    assert "by the token-command grant" in daemon.log.read_text()


def imap_only(server: DovecotServer, endpoint: TokenEndpoint, tmp_path: Path) -> str:
    """[imap] with the client-credentials grant; the relay is the plain sink."""
    secret = secret_file(tmp_path, "client-secret", CLIENT_SECRET)
    table = oauth2_table("imap", endpoint, client_id=CLIENT_ID,
                         client_secret_file=str(secret))  # fmt: skip
    return imap_section(server, table)


def confirmed(sink: SmtpSink, requester: str) -> int:
    return sum(1 for m in sink.messages if requester in m.rcpt_tos)


def test_a_token_that_lapses_during_idle_is_renewed_without_losing_or_repeating_mail(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    smtp_sink: SmtpSink,
    stopping: list[Daemon],
) -> None:
    token_endpoint.lifetime = 60  # one-minute tokens: renewed after 30 s
    extra = imap_only(oauth2_mailbox, token_endpoint, tmp_path)
    stopping.append(daemon := start_daemon(tmp_path, smtp_sink.port, extra=extra))
    oauth2_mailbox.append(HELPDESK, new_mail("Avant", sender="un@example.com"))
    smtp_sink.wait_for(lambda m: "un@example.com" in m.rcpt_tos, timeout=30)
    # The first token has lapsed: maild left IDLE and logged in anew, twice.
    wait_until(lambda: token_endpoint.count("client_credentials") >= 3, 90, "tokens")
    oauth2_mailbox.append(HELPDESK, new_mail("Après", sender="deux@example.com"))
    # and a server that ends a session, as Microsoft 365 does
    wait_until(oauth2_mailbox.kick, 30, "a session to end")
    oauth2_mailbox.append(HELPDESK, new_mail("Enfin", sender="trois@example.com"))
    smtp_sink.wait_for(lambda m: "trois@example.com" in m.rcpt_tos, timeout=30)
    smtp_sink.wait_for(lambda m: "deux@example.com" in m.rcpt_tos, timeout=30)
    wait_until(lambda: not oauth2_mailbox.list_uids(HELPDESK, "INBOX"))
    tickets = daemon.maild("tickets", "list", "--json")
    assert sorted(t["subject"] for t in tickets) == ["Après", "Avant", "Enfin"]
    who = ("un@example.com", "deux@example.com", "trois@example.com")
    assert [confirmed(smtp_sink, r) for r in who] == [1, 1, 1]
    assert "due for renewal; logging in again" in daemon.log.read_text()


def test_a_revoked_client_is_said_and_retried_until_it_is_back(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    smtp_sink: SmtpSink,
    stopping: list[Daemon],
) -> None:
    token_endpoint.lifetime = 4  # renewed every 2 s: the revocation bites soon
    extra = imap_only(oauth2_mailbox, token_endpoint, tmp_path)
    stopping.append(daemon := start_daemon(tmp_path, smtp_sink.port, extra=extra))
    story(daemon, oauth2_mailbox, smtp_sink, "Avant la révocation")
    token_endpoint.revoked.add(CLIENT_ID)
    refused = (f"imap.oauth2: the client-credentials grant was refused by "
               f"{token_endpoint.url}: invalid_client: client maild-app is "
               "disabled")  # fmt: skip
    wait_until(lambda: refused in daemon.log.read_text(), 30, "the refusal")
    during = new_mail("Pendant", sender="deux@example.com")
    uid = oauth2_mailbox.append(HELPDESK, during)
    wait_until(lambda: "no access token" in daemon.log.read_text(), 30, "backoff")
    assert oauth2_mailbox.list_uids(HELPDESK, "INBOX") == [uid]  # kept meanwhile
    token_endpoint.revoked.clear()
    smtp_sink.wait_for(lambda m: "deux@example.com" in m.rcpt_tos, timeout=60)
    wait_until(lambda: not oauth2_mailbox.list_uids(HELPDESK, "INBOX"))
    log_text = daemon.log.read_text()
    line = next(x for x in log_text.splitlines() if refused in x)
    assert line.startswith("ERROR")
    assert "(the provider does not know this client id and secret)" in line
    retry = next(x for x in log_text.splitlines() if "no access token" in x)
    assert retry.startswith("WARNING")
    assert "retry in" in retry
    assert CLIENT_SECRET not in log_text
