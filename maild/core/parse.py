"""Parse step: raw mail bytes -> InboundMail. Pure, no I/O.

mail-parser reads the address headers (From, To, Cc, Reply-To) and the date.
Python's `email` package builds the MIME tree both work on and supplies what
mail-parser loses: every occurrence of repeated headers, subjects mixing
encoded words, plain words and folding, raw 8-bit headers and file names,
body text in stateful charsets (ISO-2022-JP), text of attached messages kept
out of the body, and attachments byte for byte, including parts mail-parser
would decode as text. Runs in a worker process (adapters/parse_worker.py)
because a hostile mail may be slow to parse.
"""

from __future__ import annotations

import contextlib
import email
import email.errors
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from typing import cast

import inscriptis
import mailparser
from mailparser.exceptions import MailParserError

from maild.domain import Attachment, AutoSignals, InboundMail, Person
from maild.errors import MailTooLarge, UnparseableMail


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """The [limits] that bound what one mail may cost to parse."""

    max_attachment_bytes: int = 20_971_520
    max_parts: int = 500
    max_mime_depth: int = 20
    max_header_bytes: int = 262_144


# What mail-parser, inscriptis and the email package were seen to raise on
# hostile or broken mail (tests/unit/test_corpus_parse.py runs them all).
_PARSER_ERRORS = (
    AttributeError,
    TypeError,
    ValueError,
    LookupError,
    UnicodeError,
    IndexError,
    email.errors.MessageError,
    MailParserError,
)

_TRACE_HEADERS = frozenset(
    {b"received", b"return-path", b"delivered-to", b"x-original-to"}
)
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")
_NEWLINES = re.compile(r"\r\n?")
_NEWLINES_B = re.compile(rb"\r\n?")
_FOLDING = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BODY_TYPES = frozenset({"text/plain", "text/html"})
# Labels senders use for text written in a wider encoding of the same family.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
}


def content_hash(raw: bytes) -> str:
    """Hash the mail without the trace headers an MTA adds on redelivery."""
    fields, body_start = _header_fields(raw)
    digest = hashlib.sha256()
    for name, lines in fields:
        if name.lower() not in _TRACE_HEADERS:
            digest.update(_NEWLINES_B.sub(b"\n", b"".join(lines)))
    digest.update(_NEWLINES_B.sub(b"\n", raw[body_start:]))
    return digest.hexdigest()


def _header_fields(raw: bytes) -> tuple[list[tuple[bytes, list[bytes]]], int]:
    """Split the header block into (name, lines) fields; return the body offset."""
    fields: list[tuple[bytes, list[bytes]]] = []
    end = 0
    for match in _LINE.finditer(raw):
        line = match.group()
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
        elif named := _FIELD_NAME.match(line):
            fields.append((named.group(1), [line]))
        elif not fields and line.startswith(b"From "):
            fields.append((b"", [line]))  # an mbox separator line
        else:
            break  # the blank line, or a body line with no separator before it
        end = match.end()
    return fields, end


def parse_mail(
    raw: bytes,
    origin_envelope_sender: str | None = None,
    envelope_recipients: tuple[str, ...] = (),
    limits: ParseLimits = ParseLimits(),
) -> InboundMail:
    """Turn raw mail bytes into an InboundMail, or raise a MailRejected."""
    _, body_start = _header_fields(raw)
    if body_start > limits.max_header_bytes:
        raise MailTooLarge(
            f"header block is {body_start} bytes, limit {limits.max_header_bytes}"
        )
    try:
        msg = email.message_from_bytes(raw)
        _check_structure(msg, limits)
        if msg.is_multipart() and msg.epilogue is None:
            msg.epilogue = ""  # mail-parser 4.8 calls .index() on it
        parsed = mailparser.MailParser(msg)
        return _build(
            raw, msg, parsed, origin_envelope_sender, envelope_recipients, limits
        )
    except RecursionError:
        raise UnparseableMail("MIME structure nested too deeply to parse") from None
    except _PARSER_ERRORS as exc:
        raise UnparseableMail(f"parser failed: {type(exc).__name__}: {exc}") from exc


def _check_structure(msg: Message, limits: ParseLimits) -> None:
    count = 0
    stack = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        count += 1
        if count > limits.max_parts:
            raise MailTooLarge(f"more than {limits.max_parts} MIME parts")
        if depth > limits.max_mime_depth:
            raise UnparseableMail(f"MIME nesting deeper than {limits.max_mime_depth}")
        if part.is_multipart():
            stack.extend((child, depth + 1) for child in _children(part))


def _build(
    raw: bytes,
    msg: Message,
    parsed: mailparser.MailParser,
    origin_envelope_sender: str | None,
    envelope_recipients: tuple[str, ...],
    limits: ParseLimits,
) -> InboundMail:
    envelope_sender = (
        origin_envelope_sender.strip().lower()
        if origin_envelope_sender is not None
        else _return_path(msg)
    )
    senders = _people(parsed.from_)
    return InboundMail(
        message_id=next(iter(_msg_ids(_first(msg, "Message-ID"))), ""),
        sender=senders[0] if senders else Person("", ""),
        reply_to=_people(parsed.reply_to),
        subject=_LINE_BREAKS.sub(" ", _first(msg, "Subject")).strip(),
        text=_text(msg),
        to=_people(parsed.to),
        cc=_people(parsed.cc),
        envelope_sender=envelope_sender,
        envelope_recipients=envelope_recipients,
        delivered_to=_delivered_to(msg),
        in_reply_to=_msg_ids(" ".join(_all(msg, "In-Reply-To"))),
        references=_msg_ids(" ".join(_all(msg, "References"))),
        auto=_auto_signals(msg, envelope_sender),
        is_high_importance=_is_high_importance(msg),
        authentication_results=tuple(_all(msg, "Authentication-Results")),
        attachments=tuple(_attachments(msg, limits)),
        raw_size=len(raw),
        content_hash=content_hash(raw),
        date=parsed.date,  # aware, in UTC
    )


def _decode(value: str) -> str:
    """Decode one header value: RFC 2047 words, raw 8-bit, folding."""
    text = _raw_8bit(value)
    # A broken encoded word keeps its literal text: the best there is.
    with contextlib.suppress(email.errors.MessageError, LookupError, ValueError):
        text = str(make_header(decode_header(text)))
    return _FOLDING.sub("", text).replace("\x00", "").strip()


def _raw_8bit(text: str) -> str:
    """Read the raw 8-bit bytes of a header as UTF-8, else Windows-1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    octets = text.encode("ascii", "surrogateescape")
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return octets.decode("cp1252", "replace")


def _filename(part: Message) -> str:
    """Return the part's file name: RFC 2231, RFC 2047 and raw 8-bit decoded."""
    view = Message()  # email would turn raw 8-bit parameters into U+FFFD
    for key, value in part.raw_items():
        if key.lower() in ("content-type", "content-disposition"):
            view[key] = _raw_8bit(value)
    return _LINE_BREAKS.sub(" ", _decode(view.get_filename() or ""))


def _all(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [_decode(value) for key, value in msg.raw_items() if key.lower() == wanted]


def _first(msg: Message, name: str) -> str:
    values = _all(msg, name)
    return values[0] if values else ""


def _msg_ids(value: str) -> tuple[str, ...]:
    found = tuple(_MSG_ID.findall(value))
    if found or "<" in value:
        return found
    return tuple(value.split()[:1])  # a bare id without its angle brackets


def _people(pairs: list[tuple[str, str]]) -> tuple[Person, ...]:
    return tuple(
        Person(
            _LINE_BREAKS.sub(" ", name).replace("\x00", "").strip(),
            address.strip().lower(),
        )
        for name, address in pairs
        if address.strip()
    )


def _addr_spec(value: str) -> str:
    inside = re.search(r"<([^<>]*)>", value)
    return (inside.group(1) if inside else value).strip().lower()


def _return_path(msg: Message) -> str | None:
    values = _all(msg, "Return-Path")
    return _addr_spec(values[0]) if values else None


def _delivered_to(msg: Message) -> tuple[str, ...]:
    values = _all(msg, "Delivered-To") + _all(msg, "X-Original-To")
    return tuple(dict.fromkeys(a for a in map(_addr_spec, values) if a))


def _auto_signals(msg: Message, envelope_sender: str | None) -> AutoSignals:
    report_type = str(msg.get_param("report-type", "") or "").lower()
    return AutoSignals(
        auto_submitted=_first(msg, "Auto-Submitted").split(";")[0].strip().lower(),
        precedence=_first(msg, "Precedence").lower(),
        # X-Auto-Response-Suppress is left out: Outlook puts it on human mail.
        has_x_autoreply="X-Autoreply" in msg or "X-Autorespond" in msg,
        list_id=_first(msg, "List-Id") or _first(msg, "List-Unsubscribe"),
        is_null_return_path=envelope_sender == "",
        is_delivery_report=msg.get_content_type() == "multipart/report"
        and report_type == "delivery-status",
        is_maild_loop="X-Maild-Loop" in msg,
    )


def _is_high_importance(msg: Message) -> bool:
    return (
        _first(msg, "Importance").lower() == "high"
        or _first(msg, "X-Priority")[:1] in ("1", "2")
        or _first(msg, "Priority").lower() == "urgent"
        or _first(msg, "X-MSMail-Priority").lower() == "high"
    )


def _text(msg: Message) -> str:
    """Join the text/plain body parts; an HTML-only mail is converted to text."""
    bodies = [p for p in _leaves(msg) if not _is_attached(p)]
    plain = [_part_text(p) for p in bodies if p.get_content_type() == "text/plain"]
    if any(plain):
        text = "\n".join(plain)
    else:
        html = "\n".join(
            _part_text(p) for p in bodies if p.get_content_type() == "text/html"
        ).replace("\x00", "")
        text = inscriptis.get_text(html) if html.strip() else ""
    return _NEWLINES.sub("\n", text).replace("\x00", "")


def _part_text(part: Message) -> str:
    """Decode a text part: its charset, else UTF-8, else with replacements."""
    data = _payload_bytes(part)
    declared = part.get_content_charset() or "us-ascii"
    charset = _CHARSET_SUPERSETS.get(declared, declared)
    lenient = "cp1252" if charset == "us-ascii" else charset
    for codec, errors in (
        (charset, "strict"),
        ("utf-8", "strict"),
        (lenient, "replace"),
    ):
        try:
            # encode() refuses the lone surrogates some codecs produce
            return data.decode(codec, errors).encode().decode()
        except (LookupError, ValueError):  # ValueError: a NUL in the charset name
            continue  # try the next, more lenient reading
    return data.decode("utf-8", "replace")


def _leaves(msg: Message) -> Iterator[Message]:
    """Yield the parts that hold content; an attached message counts as one."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if _is_container(part) and not _is_attached(part):
            stack.extend(reversed(_children(part)))
        else:
            yield part


def _is_container(part: Message) -> bool:
    """Tell multiparts and enclosed mails from reports email splits in blocks."""
    return part.is_multipart() and (
        part.get_content_maintype() == "multipart"
        or part.get_content_type() in ("message/rfc822", "message/global")
    )


def _children(part: Message) -> list[Message]:
    payload = part.get_payload() if part.is_multipart() else []
    return [child for child in payload if isinstance(child, Message)]


def _is_attached(part: Message) -> bool:
    """Tell whether a part was attached, not shown: named inline text is shown."""
    disposition = part.get_content_disposition()
    return disposition == "attachment" or (
        disposition != "inline" and bool(part.get_filename())
    )


def _attachments(msg: Message, limits: ParseLimits) -> Iterator[Attachment]:
    for part in _leaves(msg):
        filename = _filename(part)
        disposition = part.get_content_disposition()
        is_body = part.get_content_type() in _BODY_TYPES and not _is_attached(part)
        if is_body and not filename:
            continue  # read by _text; named inline text is both body and attachment
        content_id = _first(part, "Content-ID").strip().strip("<>").strip()
        data = _payload_bytes(part)
        if len(data) > limits.max_attachment_bytes:
            raise MailTooLarge(
                f"attachment {filename!r} is {len(data)} bytes, "
                f"limit {limits.max_attachment_bytes}"
            )
        yield Attachment(
            filename=filename,
            content_type=part.get_content_type(),
            data=data,
            is_inline=disposition == "inline"
            or (disposition is None and bool(content_id)),
            content_id=content_id,
        )


def _payload_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message" and part.is_multipart():
        return b"".join(_flatten(inner) for inner in _children(part))
    if part.is_multipart():  # an attached container: keep it whole
        return _flatten(part)
    return cast(bytes, part.get_payload(decode=True))  # bytes for any leaf part


def _flatten(part: Message) -> bytes:
    try:
        return part.as_bytes()
    except UnicodeEncodeError:  # decoded non-ASCII text: write it as UTF-8
        return part.as_string().encode("utf-8", "surrogateescape")
