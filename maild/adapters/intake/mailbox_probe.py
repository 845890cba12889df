"""Doctor's mailbox probe: log in, read capabilities, count the inbox. I/O.

Looks and changes nothing: the inbox is selected read-only, no folder is
created (maild run does that), no mail is fetched but the date of the oldest.
It connects and logs in as the intake does: the same TLS context (`ca_file`),
STARTTLS when configured, an OAuth2 token when `auth = "oauth2"`.
What it saw goes back as a core.health.Probe plus the inbox's figures;
core.health judges them.
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass
from datetime import datetime

from imapclient import IMAPClient

from maild.adapters.oauth2 import TokenSource
from maild.adapters.tls import client_context
from maild.app.ports import Clock
from maild.config import ImapSettings
from maild.core.health import Probe
from maild.errors import TokenUnavailable

_ERRORS = (imaplib.IMAP4.error, OSError, TokenUnavailable)


@dataclass(frozen=True, slots=True)
class Inbox:
    waiting: int
    oldest_at: datetime | None


def probe_mailbox(
    settings: ImapSettings, clock: Clock, timeout: float = 15.0
) -> tuple[Probe, Inbox | None]:
    """Log in to the mailbox and count what waits in its inbox."""
    where = f"{settings.host}:{settings.port}"
    seen: dict[str, str] = {}
    step = "connect"
    try:
        is_tls = settings.tls or settings.starttls
        context = client_context(settings.ca_file) if is_tls else None
        client = IMAPClient(
            settings.host, settings.port, ssl=settings.tls, ssl_context=context,
            timeout=timeout,
        )  # fmt: skip
        client.normalise_times = False  # aware datetimes
        try:
            if settings.starttls:
                step = "starttls"
                client.starttls(context)
            step = "login"
            if settings.oauth2 is not None:
                token = TokenSource(settings.oauth2, clock).token()
                client.oauth2_login(settings.username, token.value)
                seen["login"] = "OAuth2 (XOAUTH2)"
            else:
                client.login(settings.username, settings.password)
            step = "capabilities"
            capabilities = set(client.capabilities())
            moves = [c.decode() for c in (b"MOVE", b"UIDPLUS") if c in capabilities]
            if not moves:
                raise imaplib.IMAP4.error("neither MOVE nor UIDPLUS offered")
            seen["moves with"] = "/".join(moves)
            seen["idle"] = "yes" if b"IDLE" in capabilities else "no (polling)"
            step = "select"
            client.select_folder(settings.inbox, readonly=True)
            uids = sorted(client.search("ALL"))
            oldest = None
            if uids:
                dates = client.fetch(uids[:1], ["INTERNALDATE"])
                oldest = dates[uids[0]][b"INTERNALDATE"]
        finally:
            try:
                client.logout()
            except _ERRORS:
                client.shutdown()
    except _ERRORS as exc:
        return Probe(
            where, step, str(exc) or type(exc).__name__, tuple(seen.items())
        ), None
    return Probe(where, "", "", tuple(seen.items())), Inbox(len(uids), oldest)
