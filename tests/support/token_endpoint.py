"""Test support: an OAuth2 token endpoint on 127.0.0.1 that issues HS256 JWTs.
Does network I/O.

`TokenEndpoint` answers the client-credentials and the refresh-token grants
(client secret in the form, as maild sends it, or by HTTP Basic); it rotates
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

KEY = b"maild-tests-only-hs256-signing-key-32bytes!"
CLIENT_ID = "maild-app"
CLIENT_SECRET = "app-secret-of-the-tests"


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
            if client_id not in self.clients or client_id in self.revoked:
                return 401, {
                    "error": "invalid_client",
                    "error_description": f"client {client_id} is disabled",
                }
            if secret != self.clients[client_id]:
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
