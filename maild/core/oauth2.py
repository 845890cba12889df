"""OAuth2 logins, the decisions: endpoints of the providers, which grant, when a
token is stale, the SASL XOAUTH2 string. Pure: no I/O, time is given.

The token sources that talk to the providers live in maild.adapters.oauth2;
the configuration (maild.config) uses `endpoint` and `choose_grant` to refuse
a setting that cannot work, naming its key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final


class Provider(StrEnum):
    MICROSOFT = "microsoft"  # Microsoft 365 / Entra ID
    GOOGLE = "google"  # Google Workspace, Gmail
    CUSTOM = "custom"  # token_url and scope given


class Grant(StrEnum):
    CLIENT_CREDENTIALS = "client-credentials"  # an app's own secret or certificate
    REFRESH_TOKEN = "refresh-token"  # noqa: S105 - a user's consent, kept as a refresh token
    COMMAND = "token-command"  # an outside command prints the access token


_MICROSOFT_URL: Final = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
_PRESETS: Final = {
    Provider.MICROSOFT: (_MICROSOFT_URL, "https://outlook.office365.com/.default"),
    Provider.GOOGLE: (
        "https://oauth2.googleapis.com/token",
        "https://mail.google.com/",
    ),
}
# A token is renewed this long before it expires, or halfway through its life
# when that is shorter: a login never starts with a token about to lapse.
RENEW_AHEAD: Final = timedelta(minutes=5)


class EndpointProblem(ValueError):
    """The provider's settings leave the token URL or scope unknown."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key  # the setting to fix: "tenant", "token_url", "scope"
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Endpoint:
    token_url: str
    scope: str


def endpoint(provider: Provider, tenant: str, token_url: str, scope: str) -> Endpoint:
    """Fill the token URL and scope from the provider's preset; given ones win."""
    if provider is Provider.CUSTOM:
        if not token_url:
            raise EndpointProblem("token_url", 'required with provider = "custom"')
        if not scope:
            raise EndpointProblem("scope", 'required with provider = "custom"')
        return Endpoint(token_url, scope)
    url, default_scope = _PRESETS[provider]
    if provider is Provider.MICROSOFT and not token_url:
        if not tenant:
            raise EndpointProblem(
                "tenant", "the directory (tenant) id or domain of Microsoft 365"
            )
        if "/" in tenant or "?" in tenant or "#" in tenant:
            raise EndpointProblem("tenant", f"{tenant!r} is not a tenant id or domain")
        url = url.format(tenant=tenant)
    return Endpoint(token_url or url, scope or default_scope)


def choose_grant(
    *,
    has_secret: bool,
    has_refresh_token: bool,
    has_command: bool,
    has_certificate: bool = False,
) -> Grant | None:
    """Pick the grant the settings describe; None when they describe none."""
    if has_command:
        return Grant.COMMAND
    if has_refresh_token:
        return Grant.REFRESH_TOKEN  # with or without a client secret
    if has_secret or has_certificate:
        return Grant.CLIENT_CREDENTIALS
    return None


# How long a client assertion (RFC 7523) signed with the certificate's key is
# valid: it is made for one token request, sent at once.
ASSERTION_LIFETIME: Final = timedelta(minutes=5)


def certificate_thumbprints(der: bytes) -> dict[str, str]:
    """The JWS headers naming a certificate by its thumbprints (RFC 7515 4.1.7,
    4.1.8), as Microsoft Entra ID finds the certificate of a client assertion:
    `x5t` is the SHA-1 of the DER certificate, `x5t#S256` its SHA-256, both
    base64url without padding."""

    def b64(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    return {
        "x5t": b64(hashlib.sha1(der).digest()),  # noqa: S324 - a name, not a check
        "x5t#S256": b64(hashlib.sha256(der).digest()),
    }


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and when it lapses; its value never shows in a repr."""

    value: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime | None  # None: the provider did not say; used until refused

    def renew_at(self) -> datetime | None:
        """When to get the next one: ahead of expiry, see RENEW_AHEAD."""
        if self.expires_at is None:
            return None
        life = self.expires_at - self.issued_at
        return self.expires_at - min(RENEW_AHEAD, max(life, timedelta(0)) / 2)

    def is_fresh(self, now: datetime) -> bool:
        """Tell whether the token may still start a session at now."""
        renew_at = self.renew_at()
        return renew_at is None or now < renew_at


def token_from_answer(value: str, expires_in: object, now: datetime) -> AccessToken:
    """Build the token of a provider's answer; a bad expires_in counts as absent."""
    seconds: float | None = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        seconds = float(expires_in)
    elif isinstance(expires_in, str) and expires_in.strip().isdigit():
        seconds = float(expires_in.strip())  # some providers send a string
    if seconds is None:
        return AccessToken(value, now, jwt_expiry(value))
    return AccessToken(value, now, now + timedelta(seconds=seconds))


def token_of_command(value: str, now: datetime) -> AccessToken:
    """Build the token a command printed; a JWT's own `exp` says when it lapses."""
    return AccessToken(value, now, jwt_expiry(value))


def jwt_expiry(value: str) -> datetime | None:
    """Read the `exp` claim of a JWT without checking it; None if it is no JWT."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    claims = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        exp = json.loads(base64.urlsafe_b64decode(claims)).get("exp")
    except (binascii.Error, ValueError, AttributeError):
        return None  # an opaque token that happens to hold two dots
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# What a provider's error code means for the one who configured maild.
_HINTS: Final = (
    ("AADSTS90002", "the tenant does not exist: check tenant"),
    ("AADSTS700016", "no such application in this tenant: check tenant and client_id"),
    (
        "AADSTS700027",
        "the certificate's key does not match a certificate of the "
        "application: upload the .cer of client_certificate_file",
    ),
    (
        "AADSTS700024",
        "the client assertion is outside its valid time: check the "
        "clock of this machine",
    ),
    ("AADSTS7000215", "the client secret is wrong: check client_secret_file"),
    ("AADSTS7000222", "the client secret has expired: make a new one"),
    ("AADSTS65001", "consent is missing: an admin must grant it to the application"),
    ("AADSTS70011", "the scope is not valid for this grant: check scope"),
    ("AADSTS700082", "the refresh token has expired: sign in again for a new one"),
    ("invalid_client", "the provider does not know this client id and secret"),
    ("invalid_grant", "the refresh token was revoked or has expired: get a new one"),
    ("unauthorized_client", "this client may not use this grant"),
    ("invalid_scope", "the scope is not valid for this client: check scope"),
)


def explain(error: str, description: str) -> str:
    """Say in plain words what a token endpoint's error means, or ""."""
    text = f"{error} {description}"
    for code, hint in _HINTS:
        if code in text:
            return hint
    return ""


def one_line(text: str, limit: int = 300) -> str:
    """text on one line, cut to limit characters: for the log."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as IMAP and SMTP take it."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
