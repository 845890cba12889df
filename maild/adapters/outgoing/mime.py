"""Build step: a notification (OutboundMail) as the bytes of a MIME mail.

`build_message` is the one way maild writes a mail: every header it sets is
cleaned of line breaks and folded here, bodies go out quoted-printable,
attachment names are cleaned and never a path; the address helpers say which
recipients are valid. No I/O beyond the clock for the Date header.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
from datetime import UTC, datetime
from email import policy
from email.charset import BASE64, Charset
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Final
from urllib.parse import quote

from maild.core.addresses import normalize_address, valid_recipients
from maild.domain import Attachment, OutboundMail

log = logging.getLogger(__name__)

# The mail is written here, part by part, in the layout the email package's
# compat32 generator gives (the bytes are the same; building the message
# objects and generating them cost twice as much): the header registry of the
# newer API parses and refolds every header, 2.5 times slower still. Values
# are cleaned before they get here; non-ASCII text goes out as RFC 2047
# encoded words, bodies as quoted-printable or base64, so any relay takes them.
# Headers come folded from here; the policy only keeps lines under 998.
_CRLF: Final = "\r\n"
_FOLD_AT: Final = 78
_MAX_LINE: Final = 998


class _AsFolded(policy.Compat32):
    """compat32 that writes a header as it is given when it is ASCII, folded
    with CRLF and its lines fit: every header build_message sets is. The stock
    policy folds each header again, a third of the cost of a notification;
    anything else still goes through it."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and value.isascii():
            line = f"{name}: {value}"
            lines = line.split(_CRLF)
            if all(
                len(one) <= _MAX_LINE and "\r" not in one and "\n" not in one
                for one in lines
            ) and all(one[:1] in (" ", "\t") for one in lines[1:]):
                return (line + _CRLF).encode("ascii")
        return super().fold_binary(name, value)


_POLICY: Final = _AsFolded(linesep=_CRLF, max_line_length=_MAX_LINE)
_UTF8: Final = Charset("utf-8")
_UTF8.header_encoding = BASE64
# A longer word cannot be folded: it goes out encoded, in pieces.
_WORD_MAX: Final = 900
_RFC2231_PIECE: Final = 60
# Every character str.splitlines() breaks on, and NUL: none may reach a header.
_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_BREAKS: Final = re.compile(r"\r\n|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00]")
_LINE_BREAK: Final = re.compile(rb"\r\n|\r|\n")  # in a body, as the generator sees them
_MSGID: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@\[\]-]{1,250}")
_HEADER_NAME: Final = re.compile(r"[!-9;-~]{1,76}")
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
    headers: list[tuple[str, str]] = [
        ("From", _mailbox(clean_header(from_name), sender)),
        ("To", ", ".join(recipients)),
        ("Subject", _text_header("Subject", clean_header(mail.subject))),
        ("Date", format_datetime(date or datetime.now(UTC))),
        ("Message-ID", f"<{message_id}>"),
        *_thread_headers(mail),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-Maild-Loop", sender),
    ]
    if mail.ticket_number:
        number = clean_header(mail.ticket_number)
        headers.append(("X-Maild-Ticket", _text_header("X-Maild-Ticket", number)))
    for name, value in mail.extra_headers:
        if _HEADER_NAME.fullmatch(name) and name.lower() not in _RESERVED:
            headers.append((name, _text_header(name, clean_header(value))))
        else:
            log.warning("msgid=%s extra header %r skipped", message_id, name)
    whole = _multipart(
        "alternative",
        [_text_part("plain", mail.text), _text_part("html", mail.html)],
    )
    if mail.attachments:
        whole = _multipart("mixed", [whole, *map(_attachment_part, mail.attachments)])
    content_type, body = whole
    headers += [content_type, ("MIME-Version", "1.0")]
    return _header_block(headers) + body


# A part: its Content-Type header (the first of its headers) and the rest:
# its other headers, the blank line and its body, as the email package's
# generator writes them (compat32, CRLF), which the tests compare against.
_Part = tuple[tuple[str, str], bytes]


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    return b"".join(_POLICY.fold_binary(name, value) for name, value in headers)


def _multipart(subtype: str, parts: list[_Part]) -> _Part:
    boundary = _boundary()
    delimiter = f"--{boundary}\r\n".encode()
    body = b"\r\n".join(
        delimiter + _header_block([content_type]) + rest for content_type, rest in parts
    )
    close = f"\r\n--{boundary}--\r\n".encode()
    content_type = ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')
    return content_type, b"\r\n" + body + close


def _boundary() -> str:
    """A boundary no part can contain: "=_" never occurs in quoted-printable
    or base64, so nothing need search the parts for it."""
    return f"=_maild_{secrets.token_hex(12)}"


def _text_part(subtype: str, text: str) -> _Part:
    # binascii's encoder is C; the email package's is Python, 5 times slower
    data = binascii.b2a_qp(_clean_body(text).encode(), istext=True)
    rest = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _crlf(data)
    return ("Content-Type", f'text/{subtype}; charset="utf-8"'), rest


def _attachment_part(attachment: Attachment) -> _Part:
    """Attach bytes under a cleaned-up name (the name is never a path here)."""
    maintype, _, subtype = attachment.content_type.partition("/")
    if not _TOKEN.fullmatch(maintype) or not _TOKEN.fullmatch(subtype):
        maintype, subtype = "application", "octet-stream"
    disposition = _disposition(safe_filename(attachment.filename))
    headers = _header_block(
        [
            ("Content-Transfer-Encoding", "base64"),
            ("Content-Disposition", disposition),
        ]
    )
    rest = headers + b"\r\n" + _crlf(base64.encodebytes(attachment.data))
    return ("Content-Type", f"{maintype}/{subtype}"), rest


def _crlf(data: bytes) -> bytes:
    """Every line break as CRLF, as the generator writes a body."""
    return _LINE_BREAK.sub(b"\r\n", data)


def _disposition(filename: str) -> str:
    """Content-Disposition for filename: quoted if ASCII, else RFC 2231 in pieces."""
    if filename.isascii():
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return f'attachment;\r\n filename="{escaped}"'
    pieces = [""]
    for char in filename:  # a character's escapes stay in one piece
        encoded = quote(char, safe="")
        if len(pieces[-1]) + len(encoded) > _RFC2231_PIECE:
            pieces.append("")
        pieces[-1] += encoded
    pieces[0] = "utf-8''" + pieces[0]
    params = [f"filename*{i}*={piece}" for i, piece in enumerate(pieces)]
    return "attachment;\r\n " + ";\r\n ".join(params)


def _mailbox(name: str, address: str) -> str:
    """From: "name <address>", the name quoted or encoded as it needs."""
    if not name:
        return address
    if name.isascii() and len(name) <= _WORD_MAX:
        return _folded("From", formataddr((name, address)))
    mailbox = Header(name, _UTF8, header_name="From")
    mailbox.append(f"<{address}>", "us-ascii")
    return mailbox.encode(_CRLF, maxlinelen=_FOLD_AT)


def _text_header(name: str, value: str) -> str:
    """An unstructured header: as is when ASCII in short words, else encoded."""
    if value.isascii() and all(len(word) <= _WORD_MAX for word in value.split()):
        return _folded(name, value)
    return Header(value, _UTF8, header_name=name).encode(_CRLF, maxlinelen=_FOLD_AT)


def _folded(name: str, value: str) -> str:
    """Fold ASCII text at spaces, to lines of about 78 characters."""
    return Header(value, header_name=name).encode(_CRLF, maxlinelen=_FOLD_AT)


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


def _thread_headers(mail: OutboundMail) -> list[tuple[str, str]]:
    """In-Reply-To and References, folded by us: never encoded (RFC 5322 3.6.4)."""
    headers = []
    parent = _msg_id(mail.in_reply_to)
    if parent:
        headers.append(("In-Reply-To", f"<{parent}>"))
    refs = [f"<{ref}>" for ref in map(_msg_id, mail.references) if ref]
    if refs:
        headers.append(("References", "\r\n ".join(refs)))
    return headers


def _msg_id(value: str) -> str:
    """Return the msg-id without brackets, or "" when it is not safe to repeat."""
    token = value.strip().removeprefix("<").removesuffix(">")
    return token if _MSGID.fullmatch(token) else ""


def _clean_body(value: str) -> str:
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
