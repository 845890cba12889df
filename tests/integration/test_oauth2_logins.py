"""OAuth2 logins end to end: a token endpoint started here on 127.0.0.1 issues
signed JWTs, a real Dovecot validates them locally (oauth2 passdb), and an SMTP
sink takes mail only after AUTH XOAUTH2 with a valid one. maild reads a mail
and delivers its confirmation with each grant: client credentials (with a
secret, and with a certificate's signed assertion), refresh
token (rotated by the endpoint, rewritten in its file), token_command."""

from __future__ import annotations

from collections.abc import Iterator
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


def sections(
    server: DovecotServer, sink: SmtpSink, imap: str, smtp: str | None, ca: Path
) -> str:
    text = (f'\n[imap]\nhost = "{server.host}"\nport = {server.port}\ntls = false\n'
            f'username = "{HELPDESK}"\nauth = "oauth2"\n{imap}')  # fmt: skip
    if smtp is not None:
        text += (f'\n[smtp]\nhost = "localhost"\nport = {sink.port}\n'
                 f'starttls = true\nca_file = "{ca}"\n'
                 f'username = "{HELPDESK}"\nfrom_address = "{HELPDESK}"\n'
                 f'auth = "oauth2"\n{smtp}')  # fmt: skip
    return text


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


def test_client_credentials(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    xoauth2_sink: SmtpSink,
    stopping: list[Daemon],
    test_ca: Certificates,
) -> None:
    secret = secret_file(tmp_path, "client-secret", CLIENT_SECRET)
    table = {"client_id": CLIENT_ID, "client_secret_file": str(secret)}
    extra = sections(oauth2_mailbox, xoauth2_sink,
                     oauth2_table("imap", token_endpoint, **table),
                     oauth2_table("smtp", token_endpoint, **table),
                     test_ca.ca)  # fmt: skip
    stopping.append(daemon := start_daemon(tmp_path, None, extra=extra))
    story(daemon, oauth2_mailbox, xoauth2_sink, "Accès VPN refusé")
    assert token_endpoint.count("client_credentials") == 2  # one for IMAP, one SMTP
    assert "method=XOAUTH2" in oauth2_mailbox.log()
    assert CLIENT_SECRET not in daemon.log.read_text()
    # doctor logs in as the daemon does: a token each, TLS checked on the relay
    _, checks = doctor(daemon.config)
    assert checks["imap"]["status"] == "ok", checks["imap"]
    assert "OAuth2" in checks["imap"]["detail"]
    assert checks["smtp"]["status"] == "ok", checks["smtp"]
    assert "XOAUTH2 accepted" in checks["smtp"]["detail"]


def test_client_credentials_with_a_certificate(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    xoauth2_sink: SmtpSink,
    stopping: list[Daemon],
    test_ca: Certificates,
) -> None:
    certificate = make_client_certificate(tmp_path)
    token_endpoint.certificates[CLIENT_ID] = certificate.der  # the uploaded .cer
    imap = {"client_id": CLIENT_ID,
            "client_certificate_file": str(certificate.combined)}  # fmt: skip
    smtp = {"client_id": CLIENT_ID, "client_certificate_file": str(certificate.cert),
            "client_key_file": str(certificate.key)}  # fmt: skip
    extra = sections(oauth2_mailbox, xoauth2_sink,
                     oauth2_table("imap", token_endpoint, **imap),
                     oauth2_table("smtp", token_endpoint, **smtp),
                     test_ca.ca)  # fmt: skip
    stopping.append(daemon := start_daemon(tmp_path, None, extra=extra))
    story(daemon, oauth2_mailbox, xoauth2_sink, "Certificat de l'imprimante")
    assert token_endpoint.count("client_credentials") == 2  # one for IMAP, one SMTP
    assert "method=XOAUTH2" in oauth2_mailbox.log()
    log = daemon.log.read_text()
    assert certificate.key_pem.splitlines()[1] not in log
    assert "PRIVATE KEY" not in log
    _, checks = doctor(daemon.config)  # check-config signs its own assertion
    assert checks["imap"]["status"] == "ok", checks["imap"]
    assert checks["smtp"]["status"] == "ok", checks["smtp"]


def test_refresh_token_rotated_and_saved(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    oauth2_mailbox: DovecotServer,
    xoauth2_sink: SmtpSink,
    stopping: list[Daemon],
    test_ca: Certificates,
) -> None:
    secret = secret_file(tmp_path, "client-secret", CLIENT_SECRET)
    imap_rt = secret_file(tmp_path, "imap-refresh", token_endpoint.new_refresh_token())
    smtp_rt = secret_file(tmp_path, "smtp-refresh", token_endpoint.new_refresh_token())
    first = (imap_rt.read_text(), smtp_rt.read_text())
    extra = sections(
        oauth2_mailbox, xoauth2_sink,
        oauth2_table("imap", token_endpoint, client_id=CLIENT_ID,
                     client_secret_file=str(secret), refresh_token_file=str(imap_rt)),
        oauth2_table("smtp", token_endpoint, client_id=CLIENT_ID,
                     client_secret_file=str(secret), refresh_token_file=str(smtp_rt)),
        test_ca.ca,
    )  # fmt: skip
    stopping.append(daemon := start_daemon(tmp_path, None, extra=extra))
    story(daemon, oauth2_mailbox, xoauth2_sink, "Mot de passe expiré")
    assert token_endpoint.count("refresh_token") == 2
    # The endpoint rotated both; each file now holds the one it will accept.
    now = (imap_rt.read_text().strip(), smtp_rt.read_text().strip())
    assert now[0] != first[0].strip()
    assert now[1] != first[1].strip()
    assert all(token in token_endpoint.refresh_tokens for token in now)
    assert imap_rt.stat().st_mode & 0o777 == 0o600
    assert "rotated refresh token saved" in daemon.log.read_text()
    assert now[0] not in daemon.log.read_text()


def test_token_command(
    tmp_path: Path,
    oauth2_mailbox: DovecotServer,
    xoauth2_sink: SmtpSink,
    stopping: list[Daemon],
    test_ca: Certificates,
) -> None:
    script = tmp_path / "print-token"
    jwt = make_jwt(HELPDESK, 3600)
    script.write_text(f"#!/bin/sh\necho '{jwt}'\n")
    script.chmod(0o755)
    table = f'[imap.oauth2]\nprovider = "custom"\ntoken_command = "{script}"\n'
    extra = sections(oauth2_mailbox, xoauth2_sink, table,
                     table.replace("[imap.", "[smtp."), test_ca.ca)  # fmt: skip
    stopping.append(daemon := start_daemon(tmp_path, None, extra=extra))
    story(daemon, oauth2_mailbox, xoauth2_sink, "Écran noir")
    assert "by the token-command grant" in daemon.log.read_text()


def imap_only(server: DovecotServer, endpoint: TokenEndpoint, tmp_path: Path) -> str:
    """[imap] with the client-credentials grant; the relay is the plain sink."""
    secret = secret_file(tmp_path, "client-secret", CLIENT_SECRET)
    table = oauth2_table("imap", endpoint, client_id=CLIENT_ID,
                         client_secret_file=str(secret))  # fmt: skip
    return (f'\n[imap]\nhost = "{server.host}"\nport = {server.port}\ntls = false\n'
            f'username = "{HELPDESK}"\nauth = "oauth2"\n{table}')  # fmt: skip


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
