"""Parse step, BinHex 4.0 files (old Mac mail): text to the file. Pure, no I/O.

An `application/mac-binhex40` part, or a block in a text body that follows
the line `(This file must be converted with BinHex 4.0)`, holds a Mac file
between two colons: 6-bit characters, run-length coded, then a header
(name, type, creator, fork lengths) and the data and resource forks, each
with a CRC-16. Python 3.11 dropped binascii.a2b_hqx, so this reads it: the
data fork and the name, bounded by the caller's byte limit, CRCs checked.
A block that does not check out is not a file: the caller keeps it as it came.
"""

from __future__ import annotations

import binascii
import re
from typing import Final, NamedTuple

_ALPHABET: Final = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_AS_BASE64: Final = bytes.maketrans(
    _ALPHABET, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)
_RUN: Final = 0x90
_MARKER: Final = "(This file must be converted with BinHex"
_BLOCK: Final = re.compile(
    r"^\(This file must be converted with BinHex 4\.0\)[ \t]*\r?\n"
    r"[ \t\r\n]*:([^:]*):[ \t]*(?:\r?\n|\Z)",
    re.M,
)
_FIXED_HEADER: Final = 1 + 1 + 4 + 4 + 2 + 4 + 4 + 2  # all but the name


class BinHexFile(NamedTuple):
    name: str
    data: bytes


class BinHexBroken(ValueError):
    """The text is no BinHex 4.0 file that checks out."""


class BinHexTooLarge(ValueError):
    """The file's data fork is over the byte limit; args[0] is its size."""


def decode_binhex(text: str, max_bytes: int) -> BinHexFile:
    """Decode a BinHex 4.0 text (with or without its leading line)."""
    start = text.find(":", text.find(_MARKER) + 1 if _MARKER in text else 0)
    end = text.find(":", start + 1)
    if start < 0 or end < 0:
        raise BinHexBroken("no data between colons")
    return _decoded(text[start + 1 : end], max_bytes)


def split_binhex(text: str, max_bytes: int) -> tuple[str, tuple[BinHexFile, ...]]:
    """Return the text without its BinHex blocks that decode, and their files.

    A block that does not decode stays in the text, where a person may read
    what it was; one whose file is over max_bytes raises BinHexTooLarge.
    """
    if _MARKER not in text:
        return text, ()
    kept: list[str] = []
    files: list[BinHexFile] = []
    at = 0
    for block in _BLOCK.finditer(text):
        try:
            files.append(_decoded(block.group(1), max_bytes))
        except BinHexBroken:
            continue  # not a file after all: left in the text
        kept.append(text[at : block.start()])
        at = block.end()
    kept.append(text[at:])
    return "".join(kept), tuple(files)


def _decoded(encoded: str, max_bytes: int) -> BinHexFile:
    octets = _six_bit(encoded)
    head = _unrun(octets, 1)
    if not head:
        raise BinHexBroken("empty")
    header_size = 1 + head[0] + _FIXED_HEADER - 1
    header = _unrun(octets, header_size)
    if len(header) < header_size:
        raise BinHexBroken("header cut short")
    size = int.from_bytes(header[header_size - 10 : header_size - 6])
    if size > max_bytes:
        raise BinHexTooLarge(size)
    stream = _unrun(octets, header_size + size + 2)
    if len(stream) < header_size + size + 2:
        raise BinHexBroken("data fork cut short")
    _check(stream[: header_size - 2], stream[header_size - 2 : header_size])
    data = stream[header_size : header_size + size]
    _check(data, stream[header_size + size : header_size + size + 2])
    name = header[1 : 1 + head[0]].decode("mac_roman")
    return BinHexFile(re.sub(r"[\x00-\x1f\x7f]+", " ", name).strip(), data)


def _check(data: bytes, crc: bytes) -> None:
    if binascii.crc_hqx(data, 0) != int.from_bytes(crc):
        raise BinHexBroken("CRC does not match")


def _six_bit(encoded: str) -> bytes:
    """The 8-bit stream of the 6-bit characters; line breaks are skipped.

    The bits pack as base64's do: the characters are mapped to base64's
    alphabet and binascii decodes them at C speed.
    """
    octets = encoded.encode("ascii", "replace").translate(None, b" \t\r\n")
    if octets.translate(None, _ALPHABET):
        raise BinHexBroken("a character that is no BinHex")
    octets = octets.translate(_AS_BASE64)
    octets = octets[: len(octets) - (len(octets) % 4 == 1)]  # a lone 6 bits: none
    return binascii.a2b_base64(octets + b"=" * (-len(octets) % 4))


def _unrun(octets: bytes, wanted: int) -> bytes:
    """Undo the run-length coding, stopping once `wanted` bytes are out.

    A run is `byte 0x90 n`, the byte n times in all; `0x90 0` is 0x90 itself.
    Stopping early bounds what a hostile run of runs can cost.
    """
    out = bytearray()
    at = 0
    while len(out) < wanted:
        marker = octets.find(_RUN, at)
        if marker < 0 or marker + 1 >= len(octets):
            out += octets[at:]
            break
        out += octets[at:marker]
        count = octets[marker + 1]
        at = marker + 2
        if count == 0:
            out.append(_RUN)
        elif out:
            out += out[-1:] * (count - 1)
        else:
            raise BinHexBroken("a run with nothing to repeat")
    return bytes(out[:wanted])
