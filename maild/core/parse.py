"""Parse step: raw mail bytes -> InboundMail. Pure, no I/O.

The limits are checked first (core/limits.py), on the bytes where they can
be. mail-parser then reads the address headers (From, To, Cc, Reply-To) and
the date; Python's `email` package builds the MIME tree both work on, and
core/mime.py reads from it what mail-parser loses (decoded headers, body
text, attachments byte for byte). Runs in a worker process
(adapters/parse_worker.py) because a hostile mail may be slow to parse.
`head_of` reads the header block alone, bounded, for mail that was refused.
"""

from __future__ import annotations

import contextlib
import email
import email.errors
import hashlib
import re
from email.message import Message
from typing import Final

import mailparser
from mailparser.exceptions import MailParserError

from maild.core.encoded_words import decode_raw
from maild.core.fields import MAX_ADDRESS, MAX_NAME
from maild.core.limits import (
    ParseLimits,
    TooDeep,
    check_delimiters,
    check_header_size,
    check_structure,
)
from maild.core.mime import (
    LINE_BREAKS,
    MAX_ID,
    all_values,
    attachments,
    body_charset,
    body_text,
    first_value,
    own_text,
)
from maild.domain import AuthResultsBlock, AutoSignals, InboundMail, Person
from maild.errors import UnparseableMail

__all__ = ["ParseLimits", "content_hash", "head_of", "parse_mail"]


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

_ADDRESS_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "sender", "delivered-to"}
)
_TRACE_HEADERS = frozenset(
    {b"received", b"return-path", b"delivered-to", b"x-original-to"}
)
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_FIRST_DELIMITER = re.compile(r"^--([^\s]{1,200}?)[ \t]*$", re.M)
DEFAULT_LIMITS: Final = ParseLimits()
HEAD_BYTES: Final = 65_536  # what head_of reads at most: From, Subject and friends
# Lines before the first header field that are skipped (an mbox separator, a
# stray line some clients or archives write): a few, within the first KB.
_MAX_LEAD_LINES: Final = 5
_MAX_LEAD_BYTES: Final = 1024
_EMPTY_HEAD: Final = InboundMail(
    message_id="",
    sender=Person("", ""),
    reply_to=(),
    subject="",
    text="",
    to=(),
    cc=(),
    envelope_sender=None,
    envelope_recipients=(),
    delivered_to=(),
    in_reply_to=(),
    references=(),
    auto=AutoSignals(),
    is_high_importance=False,
    authentication_results=(),
    attachments=(),
    raw_size=0,
    content_hash="",
)


def content_hash(raw: bytes) -> str:
    """Hash the mail without the trace headers an MTA adds on redelivery."""
    fields, body_start = _header_fields(raw)
    digest = hashlib.sha256()
    for name, lines in fields:
        if name.lower() not in _TRACE_HEADERS:
            digest.update(_unix_newlines(b"".join(lines)))
    digest.update(_unix_newlines(raw[body_start:]))
    return digest.hexdigest()


def _unix_newlines(data: bytes) -> bytes:
    """CRLF and lone CR as LF (bytes.replace: a regex costs ten times more)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


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


def _header_start(raw: bytes) -> int:
    """Where the header block starts: after a few lines that are no field.

    Only where a header field follows them; otherwise the mail starts at 0.
    """
    lead = raw[:_MAX_LEAD_BYTES]
    if _FIELD_NAME.match(lead):
        return 0
    for count, match in enumerate(_LINE.finditer(lead)):
        if count > _MAX_LEAD_LINES:
            break
        if count and _FIELD_NAME.match(match.group()):
            return match.start()
    return 0


def parse_mail(
    raw: bytes,
    origin_envelope_sender: str | None = None,
    envelope_recipients: tuple[str, ...] = (),
    limits: ParseLimits = DEFAULT_LIMITS,
) -> InboundMail:
    """Turn raw mail bytes into an InboundMail, or raise a MailRejected."""
    mail = raw[_header_start(raw) :]
    _, body_start = _header_fields(mail)
    check_header_size(body_start, limits)
    check_delimiters(mail, limits)
    try:
        msg = _repaired(email.message_from_bytes(mail), limits)
        check_structure(msg, limits)
        hint = body_charset(msg)
        _read_raw_addresses(msg, hint)
        if msg.is_multipart() and msg.epilogue is None:
            msg.epilogue = ""  # mail-parser 4.8 calls .index() on it
        parsed = mailparser.MailParser(msg)
        return _build(
            raw, msg, parsed, origin_envelope_sender, envelope_recipients, limits, hint
        )
    except RecursionError:
        raise TooDeep("MIME structure nested too deeply to parse") from None
    except _PARSER_ERRORS as exc:
        raise UnparseableMail(f"parser failed: {type(exc).__name__}: {exc}") from exc


def _read_raw_addresses(msg: Message, hint: str) -> None:
    """Decode the raw 8-bit names of the address headers before mail-parser
    reads them: it would keep their bytes as escapes. Changes msg in place."""
    names = {
        key.lower()
        for key, value in msg.raw_items()
        if key.lower() in _ADDRESS_HEADERS and decode_raw(value) != value
    }
    for name in names:
        fields = [(k, v) for k, v in msg.raw_items() if k.lower() == name]
        del msg[name]
        for key, value in fields:
            msg[key] = decode_raw(value, hint)


def _repaired(msg: Message, limits: ParseLimits) -> Message:
    """Read again a multipart whose boundary is missing or not the one it uses.

    The delimiters are counted again first: with the boundary the mail does
    use, parts that the count before parsing could not see become parts.
    """
    payload = msg.get_payload()
    if msg.get_content_maintype() != "multipart" or not isinstance(payload, str):
        return msg
    found = _FIRST_DELIMITER.search(payload)
    if found is None:
        return msg
    msg.set_param("boundary", found.group(1))
    fixed = msg.as_bytes()
    check_delimiters(fixed, limits)
    return email.message_from_bytes(fixed)


def head_of(
    raw: bytes,
    origin_envelope_sender: str | None = None,
    envelope_recipients: tuple[str, ...] = (),
) -> InboundMail:
    """Read the header block alone, bounded: enough to answer a refused mail.

    Reads at most HEAD_BYTES and never raises: a header it cannot read leaves
    its field empty. The body, text and attachments are left empty.
    """
    head = raw[:HEAD_BYTES]
    head = head[_header_start(head) :]
    _, end = _header_fields(head)
    msg = Message()
    senders: tuple[Person, ...] = ()
    with contextlib.suppress(*_PARSER_ERRORS):
        msg = email.message_from_bytes(head[:end])
        _read_raw_addresses(msg, body_charset(msg))
    with contextlib.suppress(*_PARSER_ERRORS):  # as parse_mail reads From
        senders = _people(mailparser.MailParser(_only(msg, "From")).from_)
    envelope_sender = (
        origin_envelope_sender.strip().lower()
        if origin_envelope_sender is not None
        else _return_path(msg)
    )
    with contextlib.suppress(*_PARSER_ERRORS):
        return InboundMail(
            message_id=next(iter(_msg_ids(first_value(msg, "Message-ID"))), ""),
            sender=senders[0] if senders else Person("", ""),
            reply_to=(),
            subject=LINE_BREAKS.sub(
                " ", first_value(msg, "Subject", body_charset(msg))
            ).strip(),
            text="",
            to=(),
            cc=(),
            envelope_sender=envelope_sender,
            envelope_recipients=envelope_recipients,
            delivered_to=_delivered_to(msg),
            in_reply_to=_msg_ids(" ".join(all_values(msg, "In-Reply-To"))),
            references=_msg_ids(" ".join(all_values(msg, "References"))),
            auto=_auto_signals(msg, envelope_sender),
            is_high_importance=False,
            authentication_results=(),
            attachments=(),
            raw_size=len(raw),
            content_hash="",
        )
    return _EMPTY_HEAD  # pragma: no cover - only if a header value breaks the type


def _only(msg: Message, name: str) -> Message:
    """A message of one header: mail-parser reads every header it is given."""
    kept = Message()
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            kept[key] = value
    return kept


def _build(
    raw: bytes,
    msg: Message,
    parsed: mailparser.MailParser,
    origin_envelope_sender: str | None,
    envelope_recipients: tuple[str, ...],
    limits: ParseLimits,
    hint: str,
) -> InboundMail:
    envelope_sender = (
        origin_envelope_sender.strip().lower()
        if origin_envelope_sender is not None
        else _return_path(msg)
    )
    senders = _people(parsed.from_)
    return InboundMail(
        message_id=next(iter(_msg_ids(first_value(msg, "Message-ID"))), ""),
        sender=senders[0] if senders else Person("", ""),
        reply_to=_people(parsed.reply_to),
        subject=LINE_BREAKS.sub(" ", first_value(msg, "Subject", hint)).strip(),
        text=body_text(msg, limits),
        to=_people(parsed.to),
        cc=_people(parsed.cc),
        envelope_sender=envelope_sender,
        envelope_recipients=envelope_recipients,
        delivered_to=_delivered_to(msg),
        in_reply_to=_msg_ids(" ".join(all_values(msg, "In-Reply-To"))),
        references=_msg_ids(" ".join(all_values(msg, "References"))),
        auto=_auto_signals(msg, envelope_sender),
        is_high_importance=_is_high_importance(msg),
        authentication_results=_auth_results_blocks(msg),
        attachments=tuple(attachments(msg, limits)),
        raw_size=len(raw),
        content_hash=content_hash(raw),
        date=parsed.date,  # aware, in UTC
        own_text=own_text(msg, limits),
    )


def _auth_results_blocks(msg: Message) -> tuple[AuthResultsBlock, ...]:
    """The Authentication-Results fields, raw, grouped as they stood together."""
    blocks: list[AuthResultsBlock] = []
    values: list[str] = []
    received = received_at_start = 0
    for key, value in msg.raw_items():
        name = key.lower()
        if name == "authentication-results":
            if not values:
                received_at_start = received
            values.append(value)
            continue
        if values:
            blocks.append(AuthResultsBlock(tuple(values), received_at_start))
            values = []
        if name == "received":
            received += 1
    if values:
        blocks.append(AuthResultsBlock(tuple(values), received_at_start))
    return tuple(blocks)


def _msg_ids(value: str) -> tuple[str, ...]:
    found = _MSG_ID.findall(value)
    if not found and "<" not in value:
        found = value.split()[:1]  # a bare id without its angle brackets
    return tuple(i for i in found if len(i) <= MAX_ID)


def _people(pairs: list[tuple[str, str]]) -> tuple[Person, ...]:
    """Keep the people with an address; bound names as the store keeps them."""
    return tuple(
        Person(
            LINE_BREAKS.sub(" ", name).replace("\x00", "").strip()[:MAX_NAME],
            address.strip().lower(),
        )
        for name, address in pairs
        if 0 < len(address.strip()) <= MAX_ADDRESS
    )


def _addr_spec(value: str) -> str:
    inside = re.search(r"<([^<>]*)>", value)
    return (inside.group(1) if inside else value).strip().lower()


def _return_path(msg: Message) -> str | None:
    values = all_values(msg, "Return-Path")
    return _addr_spec(values[0]) if values else None


def _delivered_to(msg: Message) -> tuple[str, ...]:
    values = all_values(msg, "Delivered-To") + all_values(msg, "X-Original-To")
    return tuple(dict.fromkeys(a for a in map(_addr_spec, values) if a))


def _auto_signals(msg: Message, envelope_sender: str | None) -> AutoSignals:
    report_type = str(msg.get_param("report-type", "") or "").lower()
    return AutoSignals(
        auto_submitted=first_value(msg, "Auto-Submitted").split(";")[0].strip().lower(),
        precedence=first_value(msg, "Precedence").lower(),
        has_x_autoreply="X-Autoreply" in msg or "X-Autorespond" in msg,
        list_id=first_value(msg, "List-Id") or first_value(msg, "List-Unsubscribe"),
        is_null_return_path=envelope_sender == "",
        is_delivery_report=msg.get_content_type() == "multipart/report"
        and report_type == "delivery-status",
        is_maild_loop="X-Maild-Loop" in msg,
        has_x_loop="X-Loop" in msg,
        # Outlook puts X-Auto-Response-Suppress on mail people write too: it
        # stops answers only, it does not make the mail a robot's.
        is_answer_suppressed=not {"all", "oof", "autoreply"}.isdisjoint(
            v.strip().lower()
            for v in ",".join(all_values(msg, "X-Auto-Response-Suppress")).split(",")
        ),
    )


def _is_high_importance(msg: Message) -> bool:
    return (
        first_value(msg, "Importance").lower() == "high"
        or first_value(msg, "X-Priority")[:1] in ("1", "2")
        or first_value(msg, "Priority").lower() == "urgent"
        or first_value(msg, "X-MSMail-Priority").lower() == "high"
    )
