"""Parse step, the MIME tree: header values, body text, attachments. Pure.

Reads what mail-parser loses from the tree Python's `email` package built:
every occurrence of repeated headers, subjects mixing encoded words, plain
words and folding, raw 8-bit headers and file names (core/encoded_words.py),
body text in the charsets senders really use (core/charsets.py), the best
alternative of plain and HTML, text of attached messages kept out of the
body, and attachments byte for byte, including parts mail-parser would
decode as text, uuencoded and BinHex files (core/embedded_files.py).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from email.message import Message
from typing import cast

import inscriptis

from maild.core.charsets import decode_declared
from maild.core.embedded_files import (
    BINHEX_TYPES,
    binhex_part,
    files_in_text,
    without_files,
)
from maild.core.encoded_words import decode_raw, decode_words
from maild.core.limits import AttachmentTooLarge, ParseLimits
from maild.domain import Attachment

LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")
_NEWLINES = re.compile(r"\r\n?")
_FOLDING = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_MAX_TYPE = 255  # what the store keeps of a content type
_STUB_CHARS = 300  # a plain part this short that names HTML may be a stub
# What a stub says of the richer version, in the languages of our users.
_STUB_WORDS = re.compile(
    r"html|browser|navigateur|navegador|navigator|webversion|web version"
    r"|version (?:en ligne|web)|online[- ]version|webansicht",
    re.IGNORECASE,
)
_STUB_RATIO = 10  # ... and is one when the HTML has ten times its text
MAX_ID = 998  # RFC 5322 line length: no longer msg-id or Content-ID is real


def decode(value: str, hint: str = "") -> str:
    """Decode one header value: raw 8-bit (hint: the body's charset), folding,
    RFC 2047 words."""
    text = _FOLDING.sub("", decode_raw(value, hint))
    return decode_words(text).replace("\x00", "").strip()


def body_charset(msg: Message) -> str:
    """The charset the mail's first text part declares: a hint for raw headers."""
    for part in _leaves(msg):
        if part.get_content_maintype() == "text":
            return part.get_content_charset() or ""
    return ""


def filename_of(part: Message) -> str:
    """Return the part's file name: RFC 2231, RFC 2047 and raw 8-bit decoded."""
    view = Message()  # email would turn raw 8-bit parameters into U+FFFD
    for key, value in part.raw_items():
        if key.lower() in ("content-type", "content-disposition"):
            view[key] = decode_raw(value)
    return LINE_BREAKS.sub(" ", decode(view.get_filename() or ""))


def all_values(msg: Message, name: str, hint: str = "") -> list[str]:
    wanted = name.lower()
    return [
        decode(value, hint) for key, value in msg.raw_items() if key.lower() == wanted
    ]


def first_value(msg: Message, name: str, hint: str = "") -> str:
    values = all_values(msg, name, hint)
    return values[0] if values else ""


def body_text(msg: Message, limits: ParseLimits) -> str:
    """Join the text/plain body parts; an HTML-only mail is converted to text."""
    return _text_of([p for p in _leaves(msg) if not _is_attached(p)], limits)


def own_text(msg: Message, limits: ParseLimits) -> str | None:
    """The text of the mail itself where it shows an enclosed message; else None.

    A message/rfc822 part shown inline (a forward, a message quoted whole)
    adds its text to the body; what its sender wrote is the rest.
    """
    if not any(_is_enclosed(part) for part in _shown(msg)):
        return None
    return _text_of(
        [p for p in _leaves(msg, into_messages=False) if not _is_attached(p)], limits
    )


def _shown(msg: Message) -> Iterator[Message]:
    """The containers and leaves of the body, not descending into attachments."""
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        if _is_container(part) and not _is_attached(part):
            stack.extend(_children(part))


def _is_enclosed(part: Message) -> bool:
    return part.get_content_maintype() == "message" and part.is_multipart()


def _text_of(bodies: list[Message], limits: ParseLimits) -> str:
    """The plain text when it has the text, else the HTML made text.

    A plain part loses to the HTML one when it is blank, or when it is a
    stub about HTML ("view this message in HTML", "afficher dans le
    navigateur", "im Browser anzeigen"): under _STUB_CHARS, naming HTML, a
    browser or a web version, and under a tenth of the HTML's text. A short
    plain reply ("CLOSE") names none of them and keeps winning, so its quoted
    history in the HTML never becomes the text. The HTML is only converted
    when the plain part lost.
    """
    plain = "\n".join(
        without_files(_part_text(p), limits)
        for p in bodies
        if p.get_content_type() == "text/plain"
    )
    kept = plain.strip()
    if kept and not (len(kept) < _STUB_CHARS and _STUB_WORDS.search(kept)):
        return _clean(plain)
    html = "\n".join(
        _part_text(p) for p in bodies if p.get_content_type() == "text/html"
    ).replace("\x00", "")
    text = inscriptis.get_text(html) if html.strip() else ""
    if kept and len(text.strip()) < _STUB_RATIO * len(kept):
        return _clean(plain)  # the HTML says no more than the stub
    return _clean(text)


def _clean(text: str) -> str:
    return _NEWLINES.sub("\n", text).replace("\x00", "")


def _part_text(part: Message) -> str:
    """Decode a text part: its charset, else guessed, else with replacements."""
    return decode_declared(_payload_bytes(part), part.get_content_charset() or "")


def _leaves(msg: Message, *, into_messages: bool = True) -> Iterator[Message]:
    """Yield the parts that hold content; an attached message counts as one.

    So does the mail a delivery report returns (message/rfc822 in a
    multipart/report, seldom marked as attached): its headers are what tells
    which mail bounced, and its text is not the report's. Without
    into_messages, an enclosed message shown inline counts as one too.
    """
    stack: list[tuple[Message, bool]] = [(msg, False)]
    while stack:
        part, is_returned = stack.pop()
        is_closed = is_returned or _is_attached(part)
        if not into_messages and part is not msg and _is_enclosed(part):
            is_closed = True
        if _is_container(part) and not is_closed:
            is_report = part.get_content_type() == "multipart/report"
            stack.extend(
                (child, is_report and child.get_content_maintype() == "message")
                for child in reversed(_children(part))
            )
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


def attachments(msg: Message, limits: ParseLimits) -> Iterator[Attachment]:
    """Yield the attachments; a part without a name gets one a user can open."""
    named = _Names()
    for part in _leaves(msg):
        filename = filename_of(part)
        disposition = part.get_content_disposition()
        is_body = part.get_content_type() in _BODY_TYPES and not _is_attached(part)
        if is_body and not filename:
            # read by _text; named inline text is both body and attachment
            yield from _uu_files(part, limits)
            continue
        content_id = first_value(part, "Content-ID").strip().strip("<>").strip()
        data = _payload_bytes(part)
        if len(data) > limits.max_attachment_bytes:
            raise AttachmentTooLarge(
                f"attachment {filename!r} is {len(data)} bytes, "
                f"limit {limits.max_attachment_bytes}"
            )
        content_type = part.get_content_type()
        if content_type in BINHEX_TYPES and (
            unpacked := binhex_part(data, filename, limits)
        ):
            yield unpacked
            continue
        yield Attachment(
            filename=filename or named.given(part),
            content_type=content_type
            if len(content_type) <= _MAX_TYPE
            else "application/octet-stream",
            data=data,
            is_inline=disposition == "inline"
            or (disposition is None and bool(content_id)),
            content_id=content_id if len(content_id) <= MAX_ID else "",
        )


def _uu_files(part: Message, limits: ParseLimits) -> Iterator[Attachment]:
    """The files uuencoded or BinHexed into a text body, as attachments."""
    if part.get_content_type() == "text/plain":
        yield from files_in_text(_part_text(part), limits)


# Extensions where the system's table may prefer a rarer one (.jpe, .ksh).
_EXTENSIONS = {"image/jpeg": ".jpg", "text/plain": ".txt", "message/rfc822": ".eml"}
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_MAX_STEM = 100


class _Names:
    """Names for the parts that have none: stable and unique within the mail."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._used: set[str] = set()

    def given(self, part: Message) -> str:
        """Name the part from its type, or a forwarded mail from its Subject."""
        content_type = part.get_content_type()
        if part.get_content_maintype() == "message":
            kind, extension = "forwarded-message", ".eml"
            inner = _children(part)
            stem = _safe_stem(first_value(inner[0], "Subject")) if inner else ""
        else:
            kind = "image" if part.get_content_maintype() == "image" else "attachment"
            extension = _EXTENSIONS.get(content_type) or (
                mimetypes.guess_extension(content_type) or ".bin"
            )
            stem = ""
        if stem:
            count, name = 1, stem + extension
        else:
            self._counts[kind] = count = self._counts.get(kind, 0) + 1
            name = f"{kind}-{count}{extension}"
        while name in self._used:  # two forwards with one Subject, say
            count += 1
            name = f"{stem or kind}-{count}{extension}"
        self._used.add(name)
        return name


def _safe_stem(subject: str) -> str:
    """A Subject made a file name: no separators, no control characters."""
    stem = " ".join(_UNSAFE_NAME.sub(" ", LINE_BREAKS.sub(" ", subject)).split())
    return stem[:_MAX_STEM].strip(" .")


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
