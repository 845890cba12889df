"""Deliver step: hand a built mail to the relay or to .eml files. I/O.

A `Mailer` delivers the bytes `message.build_message` made. `SmtpRelay`
keeps one connection to the relay and reuses it; `EmlDirectory` keeps each
mail as a file when no relay is configured. Both translate every failure into
DeliveryDeferred (try again later) or DeliveryFailed (5xx: give up).

STARTTLS checks the relay's certificate against the system's CAs and
`[smtp] ca_file`'s. With `auth = "oauth2"` the login is AUTH XOAUTH2 with a
token from a TokenSource, renewed once and tried again when refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, overload

from maild.adapters.oauth2 import TokenSource
from maild.adapters.outgoing.mime import clean_header
from maild.adapters.tls import client_context, refusal
from maild.app.ports import Clock
from maild.config import AuthMethod, SmtpSettings
from maild.core.addresses import valid_recipients
from maild.core.oauth2 import xoauth2
from maild.errors import DeliveryDeferred, DeliveryFailed, TokenUnavailable

log = logging.getLogger(__name__)

_FILE_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Failures an admin must fix (password, TLS); the mail itself is not at fault.
_SETUP_ERRORS: Final = (
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
    ssl.SSLError,
)


class Mailer(Protocol):
    """Where delivered mail goes: the SMTP relay or a folder of .eml files."""

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None: ...

    def close(self) -> None: ...


def eml_name(message_id: str) -> str:
    """Name the file of a message: its id when that is a safe token, else a hash."""
    token = message_id.strip().strip("<>")
    if _FILE_TOKEN.fullmatch(token):
        return token
    return hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


class SmtpRelay:
    """Deliver through the configured relay over one connection, reused.

    Not thread-safe: one outbox loop owns it.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        timeout: float = 30,
        tokens: TokenSource | None = None,
    ) -> None:
        if settings.auth is AuthMethod.OAUTH2 and tokens is None:
            raise ValueError("auth = oauth2 needs a TokenSource")
        self._settings = settings
        self._timeout = timeout
        self._tokens = tokens
        self._smtp: smtplib.SMTP | None = None

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None:
        """Hand one mail to the relay; raise DeliveryDeferred or DeliveryFailed."""
        accepted = valid_recipients(recipients)
        if not accepted:
            raise DeliveryFailed(f"no valid recipient for {message_id}")
        try:
            refused = self._send_reusing(sender, accepted, data)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _all_refused(exc.recipients) from None
        except smtplib.SMTPResponseException as exc:
            reply = _reply(exc.smtp_code, exc.smtp_error)
            raise _by_code(exc.smtp_code, reply) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryDeferred(f"relay {self._where()}: {exc}") from None
        for address, (code, text) in refused.items():
            log.warning(
                "msgid=%s recipient %s refused: %s",
                message_id,
                address,
                _reply(code, text),
            )
        log.debug(  # the outbox sender logs the notification sent
            "msgid=%s relayed to %d recipient(s)",
            message_id,
            len(accepted) - len(refused),
        )

    def check_login(self) -> None:
        """Connect and log in once (`maild check-config`); raise DeliveryDeferred."""
        try:
            self._connection()
        finally:
            self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the server is gone already; closing below is all that is left
        finally:
            self._drop()

    def _send_reusing(
        self, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> dict[str, tuple[int, bytes]]:
        try:
            return self._connection().sendmail(sender, list(recipients), data)
        except smtplib.SMTPServerDisconnected:
            # The relay dropped the idle connection (timeout, restart): once more.
            log.info("relay %s closed the connection; reconnecting", self._where())
            self._drop()
        return self._connection().sendmail(sender, list(recipients), data)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self._settings
        smtp = _Smtp(timeout=self._timeout)
        try:
            smtp.connect(s.host, s.port)
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=client_context(s.ca_file))
                smtp.ehlo()
            if self._tokens is not None:
                self._oauth2_login(smtp, self._tokens)
            elif s.username:
                smtp.login(s.username, s.password)
        except TokenUnavailable as exc:
            smtp.close()
            raise DeliveryDeferred(f"relay {self._where()}: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            # A refused login or TLS is the admin's to fix; queued mail waits for it.
            if isinstance(exc, _SETUP_ERRORS):
                why = self._setup_problem(exc)
                log.error("relay %s: cannot set up the session: %s", self._where(), why)
                raise DeliveryDeferred(f"relay {self._where()}: {why}") from None
            raise DeliveryDeferred(f"relay {self._where()}: {exc}") from None
        self._smtp = smtp
        return smtp

    def _setup_problem(self, exc: Exception) -> str:
        if isinstance(exc, ssl.SSLError):
            return refusal(exc, self._where(), "smtp.ca_file") or str(exc)
        return str(exc)

    def _oauth2_login(self, smtp: smtplib.SMTP, tokens: TokenSource) -> None:
        """AUTH XOAUTH2 with the cached token; once more with a new one if refused."""
        user = self._settings.username
        try:
            oauth2_auth(smtp, user, tokens.token().value)
        except smtplib.SMTPAuthenticationError:
            log.warning("relay %s refused the access token of %s; getting a new "
                        "one", self._where(), user)  # fmt: skip
            oauth2_auth(smtp, user, tokens.renew().value)

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"


class _Smtp(smtplib.SMTP):
    """smtplib.SMTP whose connect() also names the host STARTTLS checks the
    certificate against: SMTP(timeout=...) then connect() left it empty, and a
    verifying context refused to start ("check_hostname requires
    server_hostname")."""

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> tuple[int, bytes]:
        self._host = host
        return super().connect(host, port, source_address)


class EmlDirectory:
    """Keep each mail as `<directory>/<name>.eml` when no relay is configured."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None:
        """Write the mail atomically; the same message_id overwrites its file."""
        if not valid_recipients(recipients):
            raise DeliveryFailed(f"no valid recipient for {message_id}")
        path = self._directory / f"{eml_name(message_id)}.eml"
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        except OSError as exc:
            raise DeliveryDeferred(f"cannot write {path}: {exc.strerror}") from None
        log.debug("msgid=%s kept as %s", message_id, path.name)  # and sent, by outbox

    def forget(self, message_ids: Iterable[str]) -> None:
        """Remove the kept copies of these mails (retention, erasure); a copy
        never written, or removed already, is no error."""
        for message_id in message_ids:
            (self._directory / f"{eml_name(message_id)}.eml").unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing is held open."""


def make_mailer(
    smtp: SmtpSettings | None, eml_dir: Path, clock: Clock | None = None
) -> Mailer:
    """Pick the relay when one is configured, else the .eml folder; clock
    times the relay's OAuth2 tokens."""
    if smtp is None:
        return EmlDirectory(eml_dir)
    tokens = None
    if smtp.oauth2 is not None:
        if clock is None:
            raise ValueError("an OAuth2 relay needs a clock for its tokens")
        tokens = TokenSource(smtp.oauth2, clock)
    return SmtpRelay(smtp, tokens=tokens)


def oauth2_auth(smtp: smtplib.SMTP, user: str, token: str) -> None:
    """AUTH XOAUTH2 as user with an access token; raises as smtp.auth."""
    smtp.auth("XOAUTH2", _answer(user, token))


class _answer:
    """The XOAUTH2 client side: the token first; to the server's error
    challenge (334 and a JSON reason), the empty answer that ends the try."""

    def __init__(self, user: str, token: str) -> None:
        self._user = user
        self._token = token

    @overload
    def __call__(self, challenge: None = None, /) -> str: ...
    @overload
    def __call__(self, challenge: bytes, /) -> str: ...
    def __call__(self, challenge: bytes | None = None, /) -> str:
        return xoauth2(self._user, self._token) if challenge is None else ""


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _all_refused(
    refused: Mapping[str, tuple[int, bytes]],
) -> DeliveryDeferred | DeliveryFailed:
    replies = "; ".join(f"{a}: {_reply(c, t)}" for a, (c, t) in refused.items())
    if any(400 <= code < 500 for code, _ in refused.values()):
        return DeliveryDeferred(f"all recipients refused: {replies}")
    return DeliveryFailed(f"all recipients refused: {replies}")


def _by_code(code: int, reply: str) -> DeliveryDeferred | DeliveryFailed:
    if 500 <= code < 600:
        return DeliveryFailed(reply)
    return DeliveryDeferred(reply)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return clean_header(f"{code} {text}")
