"""Test support: an aiosmtpd sink that records the mail maild sends. Does network I/O.

The `smtp_sink` fixture runs an aiosmtpd Controller on 127.0.0.1 and a free
port. Tests read `sink.messages`, wait with `sink.wait_for(...)` (a condition
with a deadline, no sleeps), make the sink answer an error for the next mails
with `sink.fail_next(n, code=451)` or refuse a recipient with
`sink.refuse(address, code=550)`, count SMTP sessions with `sink.sessions`, and
restart it on the same port with `sink.restart()`. `SmtpSink(token_check=...,
certificates=...)` asks for STARTTLS (with a certificate of the test CA) and
then AUTH XOAUTH2 with a token the check accepts, as Microsoft 365 and Gmail
do, and counts the refused tries in `auth_refusals`.
"""

from __future__ import annotations

import base64
import email
import email.policy
import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.support.tls import Certificates

_REPLIES = {
    421: "421 Service not available, closing channel",
    451: "451 Requested action aborted: try again later",
    452: "452 Insufficient system storage",
    550: "550 Mailbox unavailable",
    552: "552 Message size exceeds fixed maximum",
    554: "554 Transaction failed",
}


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    session: int  # which SMTP session (1, 2, ...) carried it

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The mail parsed, on first use: the sink's thread only stores bytes,
        so the benchmarks do not pay a parse per notification."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Handler:
    """aiosmtpd hooks; runs on the controller's thread, shares state under a lock."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    received: list[ReceivedMail] = field(default_factory=list)
    session_ids: dict[int, int] = field(default_factory=dict)
    sessions_seen: list[object] = field(default_factory=list)  # keeps ids unique
    failures: list[int] = field(default_factory=list)  # codes for the next DATAs
    refused: dict[str, int] = field(default_factory=dict)

    def _session_number(self, session: object) -> int:
        with self.changed:
            if id(session) not in self.session_ids:
                self.sessions_seen.append(session)
                self.session_ids[id(session)] = len(self.sessions_seen)
            return self.session_ids[id(session)]

    async def handle_EHLO(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self._session_number(session)
        return responses

    async def handle_HELO(
        self, server: Any, session: Any, envelope: Any, hostname: str
    ) -> str:
        session.host_name = hostname
        self._session_number(session)
        return f"250 {server.hostname}"

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.changed:
            code = self.refused.get(address.lower())
        if code is not None:
            return _REPLIES.get(code, f"{code} Refused")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        number = self._session_number(session)
        with self.changed:
            if self.failures:
                code = self.failures.pop(0)
                self.changed.notify_all()
                return _REPLIES.get(code, f"{code} Failed on purpose")
            data = bytes(envelope.original_content or envelope.content)
            self.received.append(
                ReceivedMail(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=data,
                    session=number,
                )
            )
            self.changed.notify_all()
        return "250 Message accepted"


@dataclass
class _OAuth2Handler(_Handler):
    """The sink's hooks, and AUTH XOAUTH2 checked by token_check(user, token)."""

    token_check: Callable[[str, str], bool] = lambda _user, _token: False
    refusals: list[str] = field(default_factory=list)  # the users refused

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        text = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        fields = dict(f.split("=", 1) for f in text.split("\x01") if "=" in f)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if self.token_check(user, token):
            return AuthResult(success=True, auth_data=user)
        with self.changed:
            self.refusals.append(user)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


def _no_password(*_args: Any) -> AuthResult:
    return AuthResult(success=False)  # only XOAUTH2 is offered


class SmtpSink:
    """A running SMTP sink; see the module docstring."""

    def __init__(
        self,
        token_check: Callable[[str, str], bool] | None = None,
        certificates: Certificates | None = None,
    ) -> None:
        self._certificates = certificates
        self.host = "127.0.0.1"
        self.port = free_port()
        self._handler = (
            _OAuth2Handler(token_check=token_check) if token_check else _Handler()
        )
        self._controller: Controller | None = None

    @property
    def auth_refusals(self) -> int:
        """How many AUTH XOAUTH2 tries were refused."""
        handler = self._handler
        return len(handler.refusals) if isinstance(handler, _OAuth2Handler) else 0

    def start(self) -> None:
        """Listen on host:port."""
        options: dict[str, Any] = {}
        if isinstance(self._handler, _OAuth2Handler):
            options = {"auth_required": True, "auth_require_tls": True,
                       "auth_exclude_mechanism": ["LOGIN", "PLAIN"],
                       "authenticator": _no_password}  # fmt: skip
        if self._certificates is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            files = self._certificates
            context.load_cert_chain(files.cert, files.key)
            options.update(tls_context=context, require_starttls=True)
        self._controller = Controller(
            self._handler, hostname=self.host, port=self.port, **options
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening and drop every open session."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        """Stop and start again on the same port: clients see their session drop."""
        self.stop()
        self.start()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._handler.changed:
            return list(self._handler.received)

    @property
    def sessions(self) -> int:
        """How many SMTP sessions said EHLO or HELO so far."""
        with self._handler.changed:
            return len(self._handler.sessions_seen)

    def fail_next(self, n: int, code: int = 451) -> None:
        """Answer `code` instead of accepting the next n messages (after DATA)."""
        with self._handler.changed:
            self._handler.failures.extend([code] * n)

    def refuse(self, address: str, code: int = 550) -> None:
        """Answer `code` to RCPT TO for this address, until the test ends."""
        with self._handler.changed:
            self._handler.refused[address.lower()] = code

    def wait_for(
        self,
        predicate: Callable[[ReceivedMail], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 10,
    ) -> list[ReceivedMail]:
        """Wait until `count` received messages match; return all that match."""
        deadline = time.monotonic() + timeout
        with self._handler.changed:
            while True:
                matching = [m for m in self._handler.received if predicate(m)]
                if len(matching) >= count:
                    return matching
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(matching)} of {count} expected message(s) after "
                        f"{timeout}s; {len(self._handler.received)} received"
                    )
                self._handler.changed.wait(left)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 that records what it receives."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
