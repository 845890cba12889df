"""The token request of a TokenSource, with Authlib. Network I/O.

Imported at the first token request only (TokenSource._ask): a desk that
logs in with a password never loads Authlib, requests or cryptography, nor
does its sender process.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import requests
from authlib.common.urls import add_params_to_qs
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import RSAKey

from maild.config import OAuth2Settings
from maild.core.oauth2 import (
    ASSERTION_LIFETIME,
    AccessToken,
    certificate_thumbprints,
    explain,
    one_line,
    token_from_answer,
)
from maild.errors import TokenUnavailable

log = logging.getLogger("maild.adapters.oauth2")  # TokenSource's own


def ask(settings: OAuth2Settings, call: Any, now: datetime) -> AccessToken:
    """Run call(session) on an Authlib session for settings' client; translate
    every failure into TokenUnavailable, logged with the provider's words."""
    s = settings
    method: Any = "client_secret_post" if s.client_secret else "none"
    if s.client_key:
        method = _CertificateAssertion(s.client_certificate)
    session = OAuth2Session(
        client_id=s.client_id,
        client_secret=s.client_secret or s.client_key or None,
        scope=s.endpoint.scope,
        token_endpoint_auth_method=method,
    )
    url = s.endpoint.token_url
    try:
        with session:
            answer = call(session)
    except OAuthError as exc:
        error, description = str(exc.error or ""), str(exc.description or "")
        hint = explain(error, description)
        message = (f"{s.section}: the {s.grant} grant was refused by {url}: "
                   f"{error}: {one_line(description)}"
                   + (f" ({hint})" if hint else ""))  # fmt: skip
        log.error("%s", message)
        raise TokenUnavailable(message) from None
    except (requests.RequestException, ValueError) as exc:
        raise TokenUnavailable(
            f"{s.section}: {s.grant} grant: no answer from {url}: {one_line(str(exc))}"
        ) from None
    value = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise TokenUnavailable(
            f"{s.section}: {url} answered the {s.grant} grant without a token"
        )
    return token_from_answer(value, answer.get("expires_in"), now)


class _CertificateAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """Client authentication by a JWT signed with the certificate's key
    (RFC 7523 `private_key_jwt`), as Microsoft Entra ID takes it: Authlib's,
    with the certificate's thumbprints in the header (`x5t`, `x5t#S256`: how
    Entra ID finds the certificate), a lifetime of minutes rather than
    Authlib's hour, and the client_id in the form beside the assertion.
    iat and exp are the real time: the provider checks them."""

    def __init__(self, certificate: bytes) -> None:
        super().__init__(alg="RS256")
        self._thumbprints = certificate_thumbprints(certificate)

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return private_key_jwt_sign(
            RSAKey.import_key(auth.client_secret),  # the PEM key of the settings
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            header={"typ": "JWT", **self._thumbprints},
            expires_in=int(ASSERTION_LIFETIME.total_seconds()),
        )

    def __call__(
        self, auth: Any, method: str, uri: str, headers: Any, body: str
    ) -> tuple[str, Any, str]:
        uri, headers, body = super().__call__(auth, method, uri, headers, body)
        if "client_id=" not in body:
            body = add_params_to_qs(body, [("client_id", auth.client_id)])
        return uri, headers, body
