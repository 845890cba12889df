"""Doctor's relay probe: connect, STARTTLS, AUTH, MAIL FROM, RCPT TO, RSET. I/O.

A test conversation with the configured relay that sends nothing: the
transaction is reset after RCPT TO. It goes as far as the sender would
(STARTTLS when configured, with the same TLS context and `ca_file`; AUTH
when a username is, XOAUTH2 with a token when `auth = "oauth2"`) and returns
how far it got as a core.health.Probe; core.health judges it.
"""

from __future__ import annotations

import smtplib

from maild.adapters.oauth2 import TokenSource
from maild.adapters.outgoing.relay import oauth2_auth
from maild.adapters.tls import client_context
from maild.app.ports import Clock
from maild.config import SmtpSettings
from maild.core.health import Probe
from maild.errors import TokenUnavailable

_ERRORS = (smtplib.SMTPException, OSError, TokenUnavailable)


def probe_relay(
    settings: SmtpSettings, recipient: str, clock: Clock, timeout: float = 15.0
) -> Probe:
    """Try the relay without sending; recipient is an address it must take."""
    where = f"{settings.host}:{settings.port}"
    seen: dict[str, str] = {}
    step = "connect"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            smtp.ehlo()
            offered = smtp.has_extn("starttls")
            seen["starttls"] = "offered" if offered else "not offered"
            if settings.starttls:
                step = "starttls"
                smtp.starttls(context=client_context(settings.ca_file))
                smtp.ehlo()
                seen["starttls"] = "done"
            if settings.oauth2 is not None:
                step = "auth"
                token = TokenSource(settings.oauth2, clock).token()
                oauth2_auth(smtp, settings.username, token.value)
                seen["auth"] = "XOAUTH2 accepted"
            elif settings.username:
                step = "auth"
                smtp.login(settings.username, settings.password)
                seen["auth"] = "accepted"
            step = "mail_from"
            _expect(smtp.mail(settings.from_address))
            step = "rcpt_to"
            _expect(smtp.rcpt(recipient))
            seen["test transaction"] = f"{settings.from_address} -> {recipient} taken"
            smtp.rset()
    except _ERRORS as exc:
        return Probe(where, step, str(exc) or type(exc).__name__, tuple(seen.items()))
    return Probe(where, "", "", tuple(seen.items()))


def _expect(reply: tuple[int, bytes]) -> None:
    code, text = reply
    if not 200 <= code < 300:
        raise smtplib.SMTPResponseException(code, text)
