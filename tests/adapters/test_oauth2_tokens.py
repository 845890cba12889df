"""Token sources against a token endpoint on 127.0.0.1: cached while fresh,
renewed ahead of expiry on the injected clock and on a refusal; a rotated
refresh token is written back; a refusal says the grant and the provider's
words, never the secret; the relay retries a refused token once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maild.adapters.oauth2 import TokenSource
from maild.adapters.outgoing.relay import SmtpRelay
from maild.config import AuthMethod, OAuth2Settings, SmtpSettings
from maild.core.oauth2 import Endpoint, Grant, Provider
from maild.errors import TokenUnavailable
from tests.support.smtp_sink import SmtpSink
from tests.support.tls import Certificates
from tests.support.token_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ClientCertificate,
    TokenEndpoint,
    is_valid_jwt,
    make_client_certificate,
    make_jwt,
)

USER = "helpdesk@example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def settings(issuer: TokenEndpoint, grant: Grant, **more: object) -> OAuth2Settings:
    values: dict[str, object] = {
        "section": "imap.oauth2",
        "provider": Provider.CUSTOM,
        "grant": grant,
        "endpoint": Endpoint(issuer.url, "mail"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    values.update(more)
    return OAuth2Settings(**values)  # type: ignore[arg-type]


def test_a_token_is_reused_while_fresh_and_renewed_ahead_of_expiry(
    token_endpoint: TokenEndpoint,
) -> None:
    clock = FakeClock()
    source = TokenSource(settings(token_endpoint, Grant.CLIENT_CREDENTIALS), clock)
    first = source.token()
    assert is_valid_jwt(first.value, USER)
    clock.now += timedelta(minutes=54)
    assert source.token() is first
    clock.now += timedelta(minutes=1)  # 5 minutes before the hour
    assert source.token() is not first
    assert source.renew() is not first  # a server refused it: a new one at once
    assert token_endpoint.count("client_credentials") == 3


def test_a_rotated_refresh_token_is_written_back(
    token_endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    path = tmp_path / "refresh"
    path.write_text(token_endpoint.new_refresh_token() + "\n")
    path.chmod(0o640)
    grant = settings(token_endpoint, Grant.REFRESH_TOKEN, refresh_token_file=path)
    source = TokenSource(grant, FakeClock())
    source.renew()
    saved = path.read_text().strip()
    assert saved in token_endpoint.refresh_tokens  # the one the endpoint accepts now
    assert path.stat().st_mode & 0o777 == 0o640
    source.renew()  # with the rotated one, kept in memory
    assert path.read_text().strip() != saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refresh"]  # no leftovers


def test_a_rotation_that_cannot_be_saved_is_said_and_the_token_kept(
    token_endpoint: TokenEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "credentials"
    folder.mkdir()
    path = folder / "refresh"
    path.write_text(token_endpoint.new_refresh_token())
    grant = settings(token_endpoint, Grant.REFRESH_TOKEN, refresh_token_file=path)
    source = TokenSource(grant, FakeClock())
    source.renew()  # read, rotated, saved
    path.unlink()
    folder.rmdir()  # the file cannot be written any more
    with caplog.at_level(logging.ERROR):
        token = source.renew()  # with the rotated token kept in memory
    assert is_valid_jwt(token.value, USER)
    assert "the provider rotated the refresh token and" in caplog.text
    assert "make the file writable" in caplog.text
    assert not any(t in caplog.text for t in token_endpoint.refresh_tokens)


def test_a_refused_grant_says_which_and_why_never_the_secret(
    token_endpoint: TokenEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    token_endpoint.revoked.add(CLIENT_ID)
    source = TokenSource(
        settings(token_endpoint, Grant.CLIENT_CREDENTIALS), FakeClock()
    )
    with caplog.at_level(logging.ERROR), pytest.raises(TokenUnavailable) as caught:
        source.token()
    message = str(caught.value)
    assert "the client-credentials grant was refused by" in message
    assert "invalid_client: client maild-app is disabled" in message
    assert message in caplog.text
    assert CLIENT_SECRET not in caplog.text


@pytest.fixture(scope="module")
def client_certificates(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ClientCertificate, ClientCertificate]:
    """The certificate uploaded to the application, and another one."""
    directory = tmp_path_factory.mktemp("client-certificates")
    return (make_client_certificate(directory, "uploaded"),
            make_client_certificate(directory, "other"))  # fmt: skip


def certificate_settings(
    issuer: TokenEndpoint, certificate: ClientCertificate
) -> OAuth2Settings:
    from maild.config import read_client_certificate

    key, der = read_client_certificate(
        certificate.combined.parent, "imap.oauth2", certificate.combined.name, ""
    )
    return settings(issuer, Grant.CLIENT_CREDENTIALS, client_secret="",
                    client_key=key, client_certificate=der)  # fmt: skip


def test_a_token_is_got_with_a_certificate_instead_of_a_secret(
    token_endpoint: TokenEndpoint,
    client_certificates: tuple[ClientCertificate, ClientCertificate],
) -> None:
    uploaded, _ = client_certificates
    token_endpoint.certificates[CLIENT_ID] = uploaded.der
    source = TokenSource(certificate_settings(token_endpoint, uploaded), FakeClock())
    assert is_valid_jwt(source.token().value, USER)
    assert is_valid_jwt(source.renew().value, USER)  # a fresh assertion each time
    assert token_endpoint.count("client_credentials") == 2


def test_a_wrong_certificate_is_refused_with_the_providers_words_and_no_key_logged(
    token_endpoint: TokenEndpoint,
    client_certificates: tuple[ClientCertificate, ClientCertificate],
    caplog: pytest.LogCaptureFixture,
) -> None:
    uploaded, other = client_certificates
    token_endpoint.certificates[CLIENT_ID] = uploaded.der
    source = TokenSource(certificate_settings(token_endpoint, other), FakeClock())
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenUnavailable) as caught:
        source.token()
    message = str(caught.value)
    assert "the client-credentials grant was refused by" in message
    assert "invalid_client: AADSTS700027: Client assertion contains" in message
    assert "upload the .cer of client_certificate_file" in message
    assert message in caplog.text
    assert token_endpoint.count("client_credentials") == 0
    key_body = other.key_pem.splitlines()[1]  # a line of the key's base64
    assert key_body not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert "client_assertion" not in caplog.text  # a signed proof, for minutes


def test_an_unreachable_endpoint_is_a_transient_failure(tmp_path: Path) -> None:
    endpoint = TokenEndpoint(USER)
    endpoint.start()
    url = endpoint.url
    endpoint.stop()  # nothing listens there any more
    grant = settings(endpoint, Grant.CLIENT_CREDENTIALS, endpoint=Endpoint(url, "m"))
    with pytest.raises(TokenUnavailable, match="no answer from"):
        TokenSource(grant, FakeClock()).token()


def test_a_failing_token_command_says_its_status_and_last_words(
    token_endpoint: TokenEndpoint,
) -> None:
    grant = settings(token_endpoint, Grant.COMMAND,
                     token_command="echo 'no session' >&2; exit 3")  # fmt: skip
    with pytest.raises(TokenUnavailable) as caught:
        TokenSource(grant, FakeClock()).token()
    assert str(caught.value) == (
        "imap.oauth2.token_command exited with status 3: no session"
    )


@pytest.fixture
def xoauth2_sink(test_ca: Certificates) -> Iterator[SmtpSink]:
    sink = SmtpSink(token_check=lambda u, t: is_valid_jwt(t, u), certificates=test_ca)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def test_the_relay_gets_a_new_token_once_when_one_is_refused(
    tmp_path: Path,
    xoauth2_sink: SmtpSink,
    test_ca: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The command prints a lapsed token first, a valid one after.
    (tmp_path / "1").write_text(make_jwt(USER, -60))
    (tmp_path / "2").write_text(make_jwt(USER, 3600))
    command = f"cd {tmp_path}; f=$(ls [0-9] | head -1); cat $f; rm $f"
    oauth2 = OAuth2Settings("smtp.oauth2", Provider.CUSTOM, Grant.COMMAND,
                            Endpoint("", ""), token_command=command)  # fmt: skip
    relay = SmtpRelay(
        SmtpSettings("localhost", xoauth2_sink.port, True, USER, "", USER,
                     ca_file=test_ca.ca, auth=AuthMethod.OAUTH2, oauth2=oauth2),
        tokens=TokenSource(oauth2, FakeClock()),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        relay.send(
            "<m1@example.com>", USER, ("marie@example.com",), b"Subject: x\r\n\r\nx\r\n"
        )
    relay.close()
    (mail,) = xoauth2_sink.wait_for()
    assert mail.rcpt_tos == ("marie@example.com",)
    assert xoauth2_sink.auth_refusals == 1
    assert (
        "refused the access token of helpdesk@example.com; getting a new one"
        in caplog.text
    )
