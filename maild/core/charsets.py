"""Parse step, charsets: bytes of a body or header to text. Pure, no I/O.

Declared charsets are read the way mail clients read them: a label names
the wider encoding senders really write in (GB2312 -> GB18030, KS_C_5601 ->
CP949, Shift_JIS -> CP932, ISO-8859-1 and US-ASCII -> Windows-1252,
ISO-2022-JP -> its -2 form, then Microsoft's CP50221 with the NEC rows).
Undeclared 8-bit bytes are guessed: UTF-8 first, then the charset the
mail's body declares, then a small scorer (core/charset_guess.py). What no
reading decodes is replaced with U+FFFD, never kept as raw escapes.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

from maild.core.charset_guess import best_reading

# Labels senders use for text written in a wider encoding of the same family.
SUPERSETS: Final = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "windows-949": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "iso-2022-jp": "iso2022_jp_2",
    "iso-2022-jp-1": "iso2022_jp_2",
}
_ASCII_LABELS: Final = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "646"})
_CP50221: Final = "x-cp50221"  # ISO-2022-JP as Windows writes it; see below
_ISO_2022_JP: Final = frozenset({"iso2022_jp_2", "iso-2022-jp-2"})
_ESCAPE_JP = re.compile(rb"\x1b(?:\$[@B]|\$\(D|\(I)")


def codecs_of(label: str) -> tuple[str, ...]:
    """Return the codecs to try, strict, for a declared charset label."""
    name = label.strip().strip('"').lower()
    if name in _ASCII_LABELS or not name:
        return ("ascii",)
    wider = SUPERSETS.get(name, name)
    if wider in _ISO_2022_JP:
        return (wider, _CP50221)
    return (wider,) if wider == name else (wider, name)


def decode_declared(data: bytes, label: str) -> str:
    """Decode bytes in their declared charset, else guess; replace what is left.

    A label that is no charset, or US-ASCII on 8-bit bytes, is no
    declaration: the bytes are guessed. So is raw ISO-2022-JP under any label,
    and 8-bit bytes under an ISO-2022-JP label, which is 7-bit.
    """
    tried = codecs_of(label)
    if tried == ("ascii",) or not is_known(label) or _is_iso_2022_jp(data):
        return guess_undeclared(data)
    if tried[0] in _ISO_2022_JP and not data.isascii():
        return guess_undeclared(data)  # 8-bit bytes: no ISO-2022-JP, mislabelled
    for codec in (*tried, "utf-8"):
        text = _strict(data, codec)
        if text is not None:
            return text
    return _lenient(data, tried[0])


def guess_undeclared(data: bytes, hint: str = "") -> str:
    """Read bytes of no declared charset: UTF-8, the hint, else the best guess."""
    if data.isascii():
        if _is_iso_2022_jp(data):  # raw 7-bit ISO-2022-JP
            return _strict(data, _CP50221) or _lenient(data, "iso2022_jp_2")
        return data.decode("ascii")
    text = _strict(data, "utf-8")
    if text is not None:
        return text
    for codec in codecs_of(hint) if hint else ():
        text = _strict(data, codec)
        if text is not None:
            return text
    if _is_mostly_utf8(data):
        return data.decode("utf-8", "replace")
    return _lenient(data, best_reading(data))


def _is_iso_2022_jp(data: bytes) -> bool:
    return b"\x1b" in data and _ESCAPE_JP.search(data) is not None


def is_known(label: str) -> bool:
    """Tell whether a charset label names a text encoding this can read."""
    try:
        return codecs.lookup(codecs_of(label)[0])._is_text_encoding
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return False


def _strict(data: bytes, codec: str) -> str | None:
    try:
        if codec == _CP50221:
            return _cp50221(data)
        # encode() refuses the lone surrogates some codecs (UTF-7) produce
        return data.decode(codec).encode().decode()
    except (LookupError, ValueError):  # ValueError: a NUL in a label, bad bytes
        return None


def _lenient(data: bytes, codec: str) -> str:
    """Decode with replacements; codec is one is_known() accepted."""
    return data.decode(codec, "replace").encode("utf-8", "replace").decode()


def _is_mostly_utf8(data: bytes) -> bool:
    """Tell UTF-8 with a few broken bytes from text in another charset."""
    text = data.decode("utf-8", "replace")
    wrong = text.count("\ufffd")
    return sum(1 for ch in text if ord(ch) > 0x7F) - wrong > 2 * wrong


_MODE = re.compile(rb"\x1b(\$[@B]|\$\(D|\([BJI])")


def _cp50221(data: bytes) -> str:
    """Decode ISO-2022-JP as Windows writes it (CP50221): JIS X 0208 with the
    NEC and IBM rows, and half-width katakana, by way of their CP932 bytes.

    Python's ISO-2022-JP codecs refuse these rows, which Japanese senders use
    for circled numbers and some names. Raises ValueError on other escapes.
    """
    out = bytearray()
    mode = b"(B"
    at = 0
    for match in _MODE.finditer(data):
        out += _to_cp932(data[at : match.start()], mode)
        mode, at = match.group(1), match.end()
    out += _to_cp932(data[at:], mode)
    return out.decode("cp932")


def _to_cp932(chunk: bytes, mode: bytes) -> bytes:
    if b"\x1b" in chunk or not chunk.isascii():
        raise ValueError("not ISO-2022-JP")
    if mode in (b"(B", b"(J"):
        return chunk
    if mode == b"(I":
        return bytes(b + 0x80 for b in chunk)
    if mode == b"$(D" or len(chunk) % 2:  # JIS X 0212: CP932 has no place for it
        raise ValueError("not CP50221")
    out = bytearray()
    for first, second in zip(chunk[::2], chunk[1::2], strict=True):
        if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
            raise ValueError("not a JIS X 0208 pair")
        row = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
        cell = second + (0x1F if first % 2 else 0x7E)
        out += bytes((row, cell + (1 if first % 2 and second >= 0x60 else 0)))
    return bytes(out)
