"""OAuth2 access tokens for the IMAP and SMTP logins. Network and file I/O.

A `TokenSource` gets a token by the grant the settings describe (client
credentials, refresh token, or an outside command), keeps it in memory, and
gets the next one before it lapses (core.oauth2.AccessToken.renew_at, on the
injected clock) or when a server refused it (`renew`). The token dance is
Authlib's (README, dependency notes). A refused grant is logged with the
grant, the endpoint and the provider's error text, never a secret, and raised
as TokenUnavailable: the caller retries with its backoff. A refresh token the
provider rotates is written back to refresh_token_file atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from maild.app.ports import Clock
from maild.config import OAuth2Settings
from maild.core.oauth2 import AccessToken, Grant, one_line, token_of_command
from maild.errors import TokenUnavailable

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

log = logging.getLogger(__name__)

_COMMAND_SECONDS: Final = 60  # a token_command that hangs is given up
_SHELL: Final = "/bin/sh"


class TokenSource:
    """The access token of one login ([imap] or [smtp]); thread-safe."""

    def __init__(
        self, settings: OAuth2Settings, clock: Clock, *, timeout: float = 30
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._refresh_token = ""  # read from the file at the first use

    @property
    def grant(self) -> Grant:
        return self._settings.grant

    def token(self) -> AccessToken:
        """The cached token while it is fresh, else a new one."""
        with self._lock:
            token = self._token
            if token is None or not token.is_fresh(self._clock()):
                token = self._token = self._fetch()
            return token

    def renew(self) -> AccessToken:
        """Forget the cached token and get a new one: a server refused it."""
        with self._lock:
            self._token = None
            self._token = self._fetch()
            return self._token

    def monotonic_deadline(self, token: AccessToken) -> float | None:
        """When, on time.monotonic, a session opened with token should end."""
        renew_at = token.renew_at()
        if renew_at is None:
            return None
        left = (renew_at - self._clock()).total_seconds()
        return time.monotonic() + max(0.0, left)

    def _fetch(self) -> AccessToken:
        s = self._settings
        match s.grant:
            case Grant.COMMAND:
                token = self._run_command()
            case Grant.CLIENT_CREDENTIALS:
                token = self._ask(lambda session: session.fetch_token(
                    s.endpoint.token_url, grant_type="client_credentials",
                    timeout=self._timeout))  # fmt: skip
            case Grant.REFRESH_TOKEN:
                token = self._refresh()
        log.info("%s: new access token by the %s grant, renewed at %s",
                 s.section, s.grant, token.renew_at() or "its refusal")  # fmt: skip
        return token

    def _refresh(self) -> AccessToken:
        s = self._settings
        if not self._refresh_token:
            self._refresh_token = _read(s.refresh_token_file, s.section)
        used = self._refresh_token
        answer: dict[str, Any] = {}

        def ask(session: OAuth2Session) -> Any:
            url = s.endpoint.token_url
            answer.update(
                session.refresh_token(url, refresh_token=used, timeout=self._timeout)
            )
            return answer

        token = self._ask(ask)
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != used:
            self._refresh_token = rotated
            self._save_refresh_token(rotated)
        return token

    def _save_refresh_token(self, value: str) -> None:
        path = self._settings.refresh_token_file
        if path is None:
            return  # config: the refresh grant always has its file
        try:
            _write_atomically(path, value + "\n")
        except OSError as exc:
            log.error(
                "%s: the provider rotated the refresh token and %s cannot be "
                "rewritten (%s): this process keeps the new one, but the next "
                "start will present the old one; make the file writable",
                self._settings.section, path, exc.strerror)  # fmt: skip
            return
        log.info("%s: rotated refresh token saved to %s",
                 self._settings.section, path)  # fmt: skip

    def _ask(self, call: Any) -> AccessToken:
        """Run one token request (Authlib's, imported at the first request:
        a desk that logs in with a password never loads it)."""
        from maild.adapters import oauth2_requests

        return oauth2_requests.ask(self._settings, call, self._clock())

    def _run_command(self) -> AccessToken:
        section = self._settings.section
        try:
            done = subprocess.run(  # noqa: S603 - the operator's own command
                [_SHELL, "-c", self._settings.token_command],
                capture_output=True,
                text=True,
                timeout=_COMMAND_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            message = f"{section}.token_command could not run: {exc}"
            log.error("%s", message)
            raise TokenUnavailable(message) from None
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            said = done.stderr.strip().splitlines()
            message = (f"{section}.token_command exited with status "
                       f"{done.returncode}" + (" and printed no token"
                       if done.returncode == 0 else "")
                       + (f": {one_line(said[-1])}" if said else ""))  # fmt: skip
            log.error("%s", message)
            raise TokenUnavailable(message)
        return token_of_command(lines[0], self._clock())


def _read(path: Path | None, section: str) -> str:
    if path is None:
        raise TokenUnavailable(f"{section}.refresh_token_file: not set")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenUnavailable(
            f"{section}.refresh_token_file: cannot read {path}: {exc}"
        ) from None
    if not value:
        raise TokenUnavailable(f"{section}.refresh_token_file: {path} is empty")
    return value


def _write_atomically(path: Path, text: str) -> None:
    """Replace path's content whole, keeping its mode: a crash leaves one or
    the other token, never half of one."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
