"""Test support: an OAuth2 token endpoint on 127.0.0.1 that issues HS256 JWTs.
Does network I/O.

`TokenEndpoint` answers the client-credentials and the refresh-token grants
(client secret in the form, as maild sends it, or by HTTP Basic; or, for a
client in `certificates`, an RS256 client assertion as Microsoft Entra ID
takes it: signature by the certificate's key, `x5t`, aud, iss, sub, exp,
jti; `make_client_certificate` writes one with `cryptography`); it rotates
refresh tokens when `rotate` is set, refuses a client in `revoked` with
`invalid_client`, and counts what it issued in `issued`. Its JWTs carry
`sub` = the mailbox and an `exp` `lifetime` seconds ahead, signed with KEY:
the `dovecot_oauth2` server validates them locally with the same key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

KEY = b"maild-tests-only-hs256-signing-key-32bytes!"
CLIENT_ID = "maild-app"
CLIENT_SECRET = "app-secret-of-the-tests"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientCertificate:
    """A self-signed certificate and its RSA key, as an Azure admin has them."""

    cert: Path  # the certificate alone (PEM): the .cer uploaded to the app
    key: Path  # its private key alone (PEM, unencrypted)
    combined: Path  # the certificate then the key, in one PEM file
    der: bytes  # the certificate, as the endpoint knows it
    key_pem: str  # for asserting that no log shows it


def make_client_certificate(
    directory: Path, name: str = "maild", key_size: int = 2048
) -> ClientCertificate:
    """Write a self-signed certificate for the client credentials under directory."""
    from cryptography import x509  # lazy: only the tests with certificates
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # what openssl -nodes writes
        serialization.NoEncryption(),
    )
    paths = (directory / f"{name}.crt", directory / f"{name}.key",
             directory / f"{name}.pem")  # fmt: skip
    for path, data in zip(paths, (cert_pem, key_pem, cert_pem + key_pem), strict=True):
        path.write_bytes(data)
        path.chmod(0o600)
    der = cert.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(*paths, der, key_pem.decode())


def _x5t(der: bytes) -> str:
    return _b64(hashlib.sha1(der).digest())  # noqa: S324 - Microsoft's thumbprint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(sub: str, lifetime: int, key: bytes = KEY) -> str:
    """An HS256 JWT for sub, valid from now for lifetime seconds."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(8),
    }
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def is_valid_jwt(token: str, sub: str, key: bytes = KEY) -> bool:
    """Tell whether token is one of ours for sub and not expired."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
    if not hmac.compare_digest(_b64(expected.digest()), parts[2]):
        return False
    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    return bool(claims.get("sub") == sub and claims.get("exp", 0) > time.time())


@dataclass
class TokenEndpoint:
    user: str  # the mailbox the tokens are for (sub)
    lifetime: int = 3600
    rotate: bool = True
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    revoked: set[str] = field(default_factory=set)
    certificates: dict[str, bytes] = field(default_factory=dict)  # client: DER
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token: client
    issued: list[tuple[str, str]] = field(default_factory=list)  # (grant, token)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def new_refresh_token(self, client_id: str = CLIENT_ID) -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        with self.lock:
            self.refresh_tokens[token] = client_id
        return token

    def count(self, grant: str) -> int:
        with self.lock:
            return sum(1 for g, _ in self.issued if g == grant)

    def answer(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id") or (basic[0] if basic else "")
        secret = form.get("client_secret") or (basic[1] if basic else "")
        grant = form.get("grant_type", "")
        with self.lock:
            known = client_id in self.clients or client_id in self.certificates
            if not known or client_id in self.revoked:
                return 401, {
                    "error": "invalid_client",
                    "error_description": f"client {client_id} is disabled",
                }
            if "client_assertion" in form or client_id in self.certificates:
                refusal = self._refuse_assertion(form, client_id)
                if refusal:
                    return 401, {"error": "invalid_client",
                                 "error_description": refusal}  # fmt: skip
            elif secret != self.clients[client_id]:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "wrong client secret",
                }
            answer: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": self.lifetime,
            }
            if grant == "refresh_token":
                presented = form.get("refresh_token", "")
                if self.refresh_tokens.get(presented) != client_id:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "unknown refresh token",
                    }
                answer["refresh_token"] = presented
                if self.rotate:
                    del self.refresh_tokens[presented]
                    rotated = "rt-" + secrets.token_urlsafe(16)
                    self.refresh_tokens[rotated] = client_id
                    answer["refresh_token"] = rotated
            elif grant != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            answer["access_token"] = make_jwt(self.user, self.lifetime)
            self.issued.append((grant, answer["access_token"]))
            return 200, answer

    def _refuse_assertion(self, form: dict[str, str], client_id: str) -> str:
        """Why the client assertion does not prove client_id, or ""."""
        from cryptography import x509  # lazy: only the tests with certificates
        from cryptography.hazmat.primitives import serialization
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import RSAKey

        der = self.certificates.get(client_id)
        if der is None:
            return f"AADSTS7000218: client {client_id} has no certificate"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return "AADSTS7000218: client_assertion_type is missing or wrong"
        public = x509.load_der_x509_certificate(der).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            token = jwt.decode(
                form.get("client_assertion", ""),
                RSAKey.import_key(pem),
                algorithms=["RS256"],
            )
        except (JoseError, ValueError):
            return ("AADSTS700027: Client assertion contains an invalid "
                    "signature. [Reason - The key was not found.]")  # fmt: skip
        header, claims, now = token.header, token.claims, time.time()
        if header.get("x5t") != _x5t(der):
            return "AADSTS700027: the x5t of the assertion names no known certificate"
        if header.get("x5t#S256") != _b64(hashlib.sha256(der).digest()):
            return "AADSTS700027: the x5t#S256 of the assertion is wrong"
        if claims.get("aud") != self.url:
            return f"AADSTS700021: aud {claims.get('aud')!r} is not {self.url}"
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return "AADSTS700021: iss and sub must be the client id"
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + 600:
            return "AADSTS700024: Client assertion is not within its valid time range"
        if not claims.get("jti"):
            return "AADSTS700021: jti is missing"
        return ""

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fields = parse_qs(self.rfile.read(length).decode())
                form = {k: v[0] for k, v in fields.items()}
                basic = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, word = base64.b64decode(auth[6:]).decode().partition(":")
                    basic = (user, word)
                code, body = endpoint.answer(form, basic)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    """A token endpoint for helpdesk@example.com; one-hour tokens by default."""
    endpoint = TokenEndpoint("helpdesk@example.com")
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()
