"""Parse step, header values: RFC 2047 encoded words and raw 8-bit. Pure.

Read the way mail clients read them, not as Python's email.header does:
adjacent encoded words of one charset are joined before decoding (a sender
may split a multibyte character between two), the whitespace between
encoded words goes, the charset label is read through the superset table
(core/charsets.py), and a word that is broken or in an unknown charset keeps
its literal text while its neighbours are decoded. Raw 8-bit bytes are
guessed: UTF-8, then the charset the body declares, then a scorer. Linear in
the value's length, which core/limits.py bounds.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from maild.core.charsets import decode_declared, guess_undeclared, is_known

_WORD: Final = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")
_RAW: Final = re.compile("[\udc80-\udcff\x1b]")  # email's escapes of 8-bit bytes
_QP_HEX: Final = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_raw(text: str, hint: str = "") -> str:
    """Read the raw 8-bit bytes (or raw ISO-2022-JP) of a header as text."""
    if not _RAW.search(text):
        return text
    return guess_undeclared(text.encode("ascii", "surrogateescape"), hint)


def decode_words(text: str) -> str:
    """Decode the encoded words of a header value; keep the rest as it is."""
    if "=?" not in text:
        return text
    pieces: list[str] = []
    run_label, run = "", bytearray()
    at = 0
    for match in _WORD.finditer(text):
        between = text[at : match.start()]
        label = match.group(1).lower()
        data = _word_bytes(match.group(2), match.group(3))
        at = match.end()
        if data is None or not is_known(label):
            pieces += [_flush(run_label, run), between, match.group()]
            run_label, run = "", bytearray()
            continue
        if between[-1:].isspace():  # one space, as clients show it, for folding
            between = between.rstrip() + " "
        if run_label and not between.strip():  # adjacent to the word before
            if label == run_label:
                run += data
                continue
            between = ""
        pieces += [_flush(run_label, run), between]
        run_label, run = label, bytearray(data)
    rest = text[at:]
    if run_label and rest[:1].isspace():
        rest = " " + rest.lstrip()
    pieces += [_flush(run_label, run), rest]
    return "".join(pieces)


def _flush(label: str, run: bytearray) -> str:
    return decode_declared(bytes(run), label) if label else ""


def _word_bytes(encoding: str, encoded: str) -> bytes | None:
    """The bytes of an encoded word, or None where the encoding is broken."""
    octets = encoded.encode("ascii", "replace")
    if encoding in "Qq":
        return _QP_HEX.sub(
            lambda m: bytes((int(m.group(1), 16),)), octets.replace(b"_", b" ")
        )
    octets = octets.rstrip(b"=")  # some encoders pad too much, some not at all
    try:
        return base64.b64decode(octets + b"=" * (-len(octets) % 4), validate=True)
    except binascii.Error:
        return None
