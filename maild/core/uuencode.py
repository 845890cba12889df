"""Parse step, uuencoded files written into a text body. Pure, no I/O.

Old clients and scripts put a file in the body itself, between a
`begin 644 name` line and an `end` line; the file is an attachment and the
block is no text a person wrote.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from typing import NamedTuple

_BEGIN = re.compile(r"^begin [0-7]{3,4} ([^\r\n]{1,255}?)[ \t]*\r?$", re.M)
_END = re.compile(r"^end[ \t]*(?:\r?\n|\r|\Z)", re.M)


class UuFile(NamedTuple):
    name: str
    data: bytes


class UuTooLarge(ValueError):
    """A uuencoded file decodes to more bytes than it may."""


def split_uu(text: str, max_bytes: int) -> tuple[str, tuple[UuFile, ...]]:
    """Return the text without its uuencoded blocks, and the files they hold."""
    files = tuple(
        UuFile(
            begin.group(1), _decoded(text[begin.end() : end].splitlines(), max_bytes)
        )
        for begin, end, _ in _blocks(text)
    )
    return without_uu(text), files


def without_uu(text: str) -> str:
    """Return the text without its uuencoded blocks."""
    kept: list[str] = []
    at = 0
    for begin, _, after in _blocks(text):
        kept.append(text[at : begin.start()])
        at = after
    kept.append(text[at:])
    return "".join(kept)


def _blocks(text: str) -> Iterator[tuple[re.Match[str], int, int]]:
    """Each block: its begin line, where its end line starts and ends."""
    if "begin " not in text:
        return
    at = 0
    while (begin := _BEGIN.search(text, at)) is not None:
        end = _END.search(text, begin.end())
        if end is None:
            return  # no end line: text a person wrote, left as it is
        yield begin, end.start(), end.end()
        at = end.end()


def _decoded(lines: list[str], max_bytes: int) -> bytes:
    data = bytearray()
    for line in lines:
        if not line.strip():
            continue
        octets = line.encode("ascii", "replace")
        try:
            data += binascii.a2b_uu(octets)
        except binascii.Error:
            # Some encoders pad lines past their length; read what it declares.
            length = (((octets[0] - 32) & 63) * 4 + 5) // 3
            try:
                data += binascii.a2b_uu(octets[:length])
            except binascii.Error:
                continue  # a broken line: the rest of the file is still worth it
        if len(data) > max_bytes:
            raise UuTooLarge(len(data))
    return bytes(data)
