"""OAuth2 logins, the pure part and the configuration: provider presets, which
grant, when a token is renewed, and each wrong setting named by its key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maild.config import AuthMethod, parse_settings
from maild.core.oauth2 import (
    AccessToken,
    Endpoint,
    EndpointProblem,
    Grant,
    Provider,
    choose_grant,
    endpoint,
    explain,
    jwt_expiry,
    one_line,
    token_from_answer,
    token_of_command,
    xoauth2,
)
from maild.errors import ConfigError

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINIMAL = {
    "accepted_domains": ["example.com"],
    "incident_address": "helpdesk@example.com",
    "pool_address": "pool@example.com",
}


@pytest.mark.parametrize(
    ("provider", "tenant", "url", "scope", "expected"),
    [
        (
            Provider.MICROSOFT,
            "contoso.onmicrosoft.com",
            "",
            "",
            Endpoint(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
                "https://outlook.office365.com/.default",
            ),
        ),
        (
            Provider.GOOGLE,
            "",
            "",
            "",
            Endpoint("https://oauth2.googleapis.com/token", "https://mail.google.com/"),
        ),
        (
            Provider.GOOGLE,
            "",
            "https://t.example/token",
            "s",
            Endpoint("https://t.example/token", "s"),
        ),
        (
            Provider.MICROSOFT,
            "",
            "https://t.example/token",
            "",
            Endpoint(
                "https://t.example/token", "https://outlook.office365.com/.default"
            ),
        ),
        (
            Provider.CUSTOM,
            "",
            "https://t.example/token",
            "mail",
            Endpoint("https://t.example/token", "mail"),
        ),
    ],
)
def test_presets_fill_what_is_not_given(
    provider: Provider, tenant: str, url: str, scope: str, expected: Endpoint
) -> None:
    assert endpoint(provider, tenant, url, scope) == expected


@pytest.mark.parametrize(
    ("provider", "tenant", "url", "scope", "key"),
    [
        (Provider.MICROSOFT, "", "", "", "tenant"),
        (Provider.MICROSOFT, "a/b", "", "", "tenant"),
        (Provider.CUSTOM, "", "", "mail", "token_url"),
        (Provider.CUSTOM, "", "https://t.example/token", "", "scope"),
    ],
)
def test_an_endpoint_that_cannot_be_known_names_the_setting(
    provider: Provider, tenant: str, url: str, scope: str, key: str
) -> None:
    with pytest.raises(EndpointProblem) as caught:
        endpoint(provider, tenant, url, scope)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("secret", "refresh", "command", "grant"),
    [
        (True, False, False, Grant.CLIENT_CREDENTIALS),
        (True, True, False, Grant.REFRESH_TOKEN),
        (False, True, False, Grant.REFRESH_TOKEN),
        (False, False, True, Grant.COMMAND),
        (False, False, False, None),
    ],
)
def test_the_grant_follows_the_files_given(
    secret: bool, refresh: bool, command: bool, grant: Grant | None
) -> None:
    chosen = choose_grant(
        has_secret=secret, has_refresh_token=refresh, has_command=command
    )
    assert chosen == grant


@pytest.mark.parametrize(
    ("life", "fresh_until"),
    [
        (timedelta(hours=1), timedelta(minutes=55)),  # 5 minutes ahead
        (timedelta(minutes=1), timedelta(seconds=30)),  # a short one: halfway
    ],
)
def test_a_token_is_renewed_ahead_of_its_expiry(
    life: timedelta, fresh_until: timedelta
) -> None:
    token = token_from_answer("t", int(life.total_seconds()), NOW)
    assert token.expires_at == NOW + life
    assert token.renew_at() == NOW + fresh_until
    assert token.is_fresh(NOW + fresh_until - timedelta(seconds=1))
    assert not token.is_fresh(NOW + fresh_until)


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"eyJhbGciOiJIUzI1NiJ9.{body.decode()}.c2ln"


def test_without_expires_in_a_jwt_says_when_it_lapses() -> None:
    exp = NOW + timedelta(minutes=10)
    token = token_from_answer(_jwt({"exp": int(exp.timestamp())}), None, NOW)
    assert token.expires_at == exp
    assert token_from_answer("t", "3600", NOW).expires_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "value",
    [
        "opaque-token",
        "a.b.c",
        _jwt({"sub": "x"}),
        _jwt({"exp": True}),
        _jwt({"exp": 10**20}),  # past any date Python can name
    ],
)
def test_a_token_without_a_readable_exp_is_kept_until_refused(value: str) -> None:
    assert jwt_expiry(value) is None
    token = token_of_command(value, NOW)
    assert token.is_fresh(NOW + timedelta(days=365))


def test_the_token_never_shows_in_a_repr() -> None:
    assert "s3cret" not in repr(AccessToken("s3cret", NOW, None))


def test_xoauth2_initial_response() -> None:
    assert (
        xoauth2("u@example.com", "tok")
        == "user=u@example.com\x01auth=Bearer tok\x01\x01"
    )


@pytest.mark.parametrize(
    ("error", "description", "words"),
    [
        ("invalid_request", "AADSTS90002: Tenant 'x' not found.", "check tenant"),
        (
            "unauthorized_client",
            "AADSTS700016: Application with identifier",
            "check tenant and client_id",
        ),
        (
            "invalid_client",
            "AADSTS7000215: Invalid client secret",
            "client_secret_file",
        ),
        (
            "invalid_grant",
            "AADSTS65001: The user or administrator has not consented",
            "consent",
        ),
        ("invalid_grant", "Token has been expired or revoked.", "revoked"),
        ("server_error", "", ""),
    ],
)
def test_provider_errors_are_explained(
    error: str, description: str, words: str
) -> None:
    hint = explain(error, description)
    assert words in hint if words else hint == ""


def _settings(tmp_path: Path, section: str, table: dict[str, object]) -> object:
    raw = {"helpdesk": MINIMAL, section: table}
    return parse_settings(raw, tmp_path, tmp_path / "maild.toml")


def _secret(tmp_path: Path) -> str:
    (tmp_path / "secret").write_text("app-secret\n")
    return "secret"


def test_a_client_credentials_login_is_read(tmp_path: Path) -> None:
    table = {"username": "helpdesk@example.com", "auth": "oauth2", "oauth2": {
        "provider": "microsoft", "tenant": "contoso.onmicrosoft.com",
        "client_id": "abc", "client_secret_file": _secret(tmp_path)}}  # fmt: skip
    settings = _settings(tmp_path, "imap", table)
    imap = settings.imap  # type: ignore[attr-defined]
    assert imap.auth is AuthMethod.OAUTH2
    assert imap.oauth2.grant is Grant.CLIENT_CREDENTIALS
    assert imap.oauth2.client_secret == "app-secret"
    assert imap.oauth2.section == "imap.oauth2"
    assert "app-secret" not in repr(imap)


@pytest.mark.parametrize(
    ("section", "table", "key"),
    [
        ("imap", {"auth": "kerberos"}, "imap.auth"),
        ("imap", {"auth": "oauth2"}, "imap.oauth2"),
        ("imap", {"oauth2": {"provider": "google"}}, "imap.oauth2"),
        ("imap", {"auth": "oauth2", "password": "x", "oauth2": {}}, "imap.password"),
        ("imap", {"tls": True, "starttls": True}, "imap.starttls"),
        ("imap", {"ca_file": "missing.pem"}, "imap.ca_file"),
        ("imap", {"ca_file": "secret"}, "imap.ca_file"),  # not PEM
        (
            "imap",
            {"auth": "oauth2", "oauth2": {"provider": "yahoo"}},
            "imap.oauth2.provider",
        ),
        (
            "imap",
            {"auth": "oauth2", "oauth2": {"provider": "google", "client_id": "a"}},
            "imap.oauth2.client_secret_file",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {"provider": "google", "client_secret_file": "secret"},
            },
            "imap.oauth2.client_id",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "microsoft",
                    "client_id": "a",
                    "client_secret_file": "secret",
                },
            },
            "imap.oauth2.tenant",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "custom",
                    "client_id": "a",
                    "client_secret_file": "secret",
                    "scope": "s",
                },
            },
            "imap.oauth2.token_url",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "custom",
                    "client_id": "a",
                    "client_secret_file": "secret",
                    "scope": "s",
                    "token_url": "http://idp.example/token",
                },
            },
            "imap.oauth2.token_url",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "google",
                    "client_id": "a",
                    "refresh_token_file": "nope",
                },
            },
            "imap.oauth2.refresh_token_file",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "custom",
                    "token_command": "cat 'x",
                },
            },
            "imap.oauth2.token_command",
        ),
        (
            "imap",
            {
                "auth": "oauth2",
                "oauth2": {
                    "provider": "custom",
                    "token_command": "x",
                    "client_secret_file": "secret",
                },
            },
            "imap.oauth2.token_command",
        ),
        (
            "imap",
            {"auth": "oauth2", "oauth2": {"provider": "custom", "colour": "x"}},
            "imap.oauth2.colour",
        ),
        (
            "smtp",
            {"auth": "oauth2", "oauth2": {"provider": "custom", "token_command": "x"}},
            "smtp.username",
        ),
    ],
)
def test_a_wrong_oauth2_or_tls_setting_names_its_key(
    tmp_path: Path, section: str, table: dict[str, object], key: str
) -> None:
    _secret(tmp_path)
    table = {"username": "helpdesk@example.com", **table}
    if section == "smtp":
        table = {"from_address": "helpdesk@example.com", **table, "username": ""}
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, section, table)
    assert caught.value.key == key


def test_a_providers_words_are_logged_on_one_line_and_cut() -> None:
    said = "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1234"
    assert (
        one_line(said)
        == "AADSTS7000215: Invalid client secret provided. Trace ID: 1234"
    )
    assert one_line("x" * 400) == "x" * 299 + "…"
