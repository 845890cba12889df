"""Deliver step: build the MIME mail, hand it to the relay or to .eml files. I/O.

`build_message` turns an OutboundMail into bytes; a `Mailer` delivers bytes.
`SmtpRelay` keeps one connection to the relay and reuses it; `EmlDirectory`
keeps each mail as a file when no relay is configured. Both translate every
failure into DeliveryDeferred (try again later) or DeliveryFailed (5xx: give up).
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
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Final, Protocol

from maild.config import SmtpSettings
from maild.domain import Attachment, OutboundMail
from maild.errors import DeliveryDeferred, DeliveryFailed

log = logging.getLogger(__name__)

# Raw headers (Message-ID, In-Reply-To, References) are folded by us: the stock
# policy would turn a long msg-id into RFC 2047 encoded words and break threading.
# 7bit: bodies go out quoted-printable or base64, so any relay takes them.
_POLICY: Final = policy.SMTP.clone(cte_type="7bit")
_GENERATE: Final = _POLICY.clone(refold_source="none")
# Every character str.splitlines() breaks on, and NUL: none may reach a header.
_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_BREAKS: Final = re.compile(r"\r\n|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00]")
_LOCAL: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_MSGID: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@\[\]-]{1,250}")
_HEADER_NAME: Final = re.compile(r"[!-9;-~]{1,76}")
_FILE_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# In an attachment name: path separators and their look-alikes, control
# characters, and the bidi controls that show "exe.png" for "\u202egnp.exe".
_FILE_UNSAFE: Final = re.compile(
    "[/\\\\\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u2044\u2215\u29f8\u29f9\ufe68\uff0f\uff3c]"
)
_FILE_MAX: Final = 200
# Headers maild sets itself: an extra header may not add a second one.
# fmt: off
_RESERVED: Final = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to",
    "references", "auto-submitted", "x-auto-response-suppress", "x-maild-loop",
    "x-maild-ticket", "mime-version", "content-type", "content-transfer-encoding",
    "sender", "return-path",
})
# fmt: on
# Failures an admin must fix (password, TLS); the mail itself is not at fault.
_SETUP_ERRORS: Final = (
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
    ssl.SSLError,
)
_MAX_ADDRESS: Final = 254
_MAX_LOCAL: Final = 64


class Mailer(Protocol):
    """Where delivered mail goes: the SMTP relay or a folder of .eml files."""

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None: ...

    def close(self) -> None: ...


def build_message(
    mail: OutboundMail,
    from_address: str,
    from_name: str = "",
    *,
    date: datetime | None = None,
) -> bytes:
    """Build the multipart/alternative mail; ValueError if no recipient is valid."""
    recipients = valid_recipients(mail.to)
    if not recipients:
        raise ValueError(f"no valid recipient for message {mail.message_id!r}")
    sender = normalize_address(from_address)
    message_id = _msg_id(mail.message_id)
    if sender is None or not message_id:
        raise ValueError("bad From address or Message-ID")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(display_name=clean_header(from_name), addr_spec=sender)
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = clean_header(mail.subject)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg.set_raw("Message-ID", f"<{message_id}>")
    _set_thread_headers(msg, mail)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Maild-Loop"] = sender
    if mail.ticket_number:
        msg["X-Maild-Ticket"] = clean_header(mail.ticket_number)
    for name, value in mail.extra_headers:
        if _HEADER_NAME.fullmatch(name) and name.lower() not in _RESERVED:
            msg[name] = clean_header(value)
        else:
            log.warning("msgid=%s extra header %r skipped", message_id, name)
    msg.set_content(_clean_body(mail.text))
    msg.add_alternative(_clean_body(mail.html), subtype="html")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs to the top level only
    for attachment in mail.attachments:
        _attach(msg, attachment)
    return msg.as_bytes(policy=_GENERATE)


def _attach(msg: EmailMessage, attachment: Attachment) -> None:
    """Attach bytes under a cleaned-up name (the name is never a path here)."""
    maintype, _, subtype = attachment.content_type.partition("/")
    if not _TOKEN.fullmatch(maintype) or not _TOKEN.fullmatch(subtype):
        maintype, subtype = "application", "octet-stream"
    msg.add_attachment(
        attachment.data,
        maintype=maintype,
        subtype=subtype,
        filename=safe_filename(attachment.filename),
    )


def safe_filename(name: str) -> str:
    """Write an attachment name for a mail: one line, no path, no bidi tricks."""
    clean = _FILE_UNSAFE.sub("_", clean_header(name))[:_FILE_MAX].strip()
    return clean if clean.strip(". _") else "attachment"


def clean_header(value: str) -> str:
    """Replace line breaks and NUL by spaces, and unencodable characters by '?'."""
    text = value.encode("utf-8", "replace").decode("utf-8")
    # A literal "=?...?=" from a mail would be decoded again as an encoded word
    # when the header is folded; a word joiner keeps it plain text.
    text = text.replace("=?", "=\u2060?")
    return _BREAKS.sub(" ", text).strip()


def normalize_address(value: str) -> str | None:
    """Return value as a plain ASCII addr-spec, or None when it is not one."""
    local, at, domain = value.strip().rpartition("@")
    if not at or len(local) > _MAX_LOCAL or not _LOCAL.fullmatch(local):
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    address = f"{local}@{domain}"
    if len(address) > _MAX_ADDRESS or not _DOMAIN.fullmatch(domain):
        return None
    return address


def valid_recipients(addresses: Iterable[str]) -> tuple[str, ...]:
    """Keep the valid addresses, once each (case ignored), in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for raw in addresses:
        address = normalize_address(raw)
        if address is None:
            log.warning("recipient %r is not a valid address; skipped", raw)
        elif address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    return tuple(kept)


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

    def __init__(self, settings: SmtpSettings, timeout: float = 30) -> None:
        self._settings = settings
        self._timeout = timeout
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
        log.info(
            "msgid=%s relayed to %d recipient(s)",
            message_id,
            len(accepted) - len(refused),
        )

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
        smtp = smtplib.SMTP(timeout=self._timeout)
        try:
            smtp.connect(s.host, s.port)
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            # A refused login or TLS is the admin's to fix; queued mail waits for it.
            if isinstance(exc, _SETUP_ERRORS):
                log.error("relay %s: cannot set up the session: %s", self._where(), exc)
            raise DeliveryDeferred(f"relay {self._where()}: {exc}") from None
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"


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
        log.info("msgid=%s kept as %s", message_id, path.name)

    def close(self) -> None:
        """Nothing is held open."""


def make_mailer(smtp: SmtpSettings | None, eml_dir: Path) -> Mailer:
    """Pick the relay when one is configured, else the .eml folder."""
    return SmtpRelay(smtp) if smtp is not None else EmlDirectory(eml_dir)


def _set_thread_headers(msg: EmailMessage, mail: OutboundMail) -> None:
    parent = _msg_id(mail.in_reply_to)
    if parent:
        msg.set_raw("In-Reply-To", f"<{parent}>")
    refs = [f"<{ref}>" for ref in map(_msg_id, mail.references) if ref]
    if refs:
        msg.set_raw("References", "\r\n ".join(refs))


def _msg_id(value: str) -> str:
    """Return the msg-id without brackets, or "" when it is not safe to repeat."""
    token = value.strip().removeprefix("<").removesuffix(">")
    return token if _MSGID.fullmatch(token) else ""


def _clean_body(value: str) -> str:
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


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
