"""Parse step, files written into text: uuencoded and BinHex blocks. Pure.

Old clients put a file in the body itself (uuencode, core/uuencode.py) or
sent a Mac file as BinHex 4.0 (core/binhex.py), in a part of its own or in
the body. Here such files become attachments and leave the body's text; a
file over max_attachment_bytes refuses the mail as any attachment would.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import Final

from maild.core.binhex import (
    BinHexBroken,
    BinHexTooLarge,
    decode_binhex,
    split_binhex,
)
from maild.core.limits import AttachmentTooLarge, ParseLimits
from maild.core.uuencode import UuTooLarge, split_uu, without_uu
from maild.domain import Attachment

BINHEX_TYPES: Final = frozenset(
    {"application/mac-binhex40", "application/x-mac-binhex40", "application/binhex"}
)
_BINHEX_MARKER: Final = "converted with BinHex"


def without_files(text: str, limits: ParseLimits) -> str:
    """Return the text without the uuencoded and BinHex files written into it."""
    text = without_uu(text)
    if _BINHEX_MARKER not in text:
        return text
    try:
        return split_binhex(text, limits.max_attachment_bytes)[0]
    except BinHexTooLarge:
        return text  # files_in_text refuses the mail


def files_in_text(text: str, limits: ParseLimits) -> Iterator[Attachment]:
    """Yield the files uuencoded or BinHexed into a text, as attachments."""
    try:
        text, uu_files = split_uu(text, limits.max_attachment_bytes)
    except UuTooLarge as exc:
        raise AttachmentTooLarge(
            f"uuencoded attachment is over {exc.args[0]} bytes, "
            f"limit {limits.max_attachment_bytes}"
        ) from None
    files: list[tuple[str, bytes]] = list(uu_files)
    if _BINHEX_MARKER in text:
        try:
            files += split_binhex(text, limits.max_attachment_bytes)[1]
        except BinHexTooLarge as exc:
            raise _too_large(exc, limits) from None
    for name, data in files:
        yield Attachment(name, _type_of(name), data)


def binhex_part(data: bytes, filename: str, limits: ParseLimits) -> Attachment | None:
    """Return the file a BinHex part holds, or None where it does not check out."""
    try:
        name, content = decode_binhex(
            data.decode("ascii", "replace"), limits.max_attachment_bytes
        )
    except BinHexTooLarge as exc:
        raise _too_large(exc, limits) from None
    except BinHexBroken:
        return None  # kept as it came: someone may still open it
    name = name or filename.removesuffix(".hqx") or "attachment.bin"
    return Attachment(name, _type_of(name), content)


def _type_of(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=True)
    return guessed or "application/octet-stream"


def _too_large(exc: BinHexTooLarge, limits: ParseLimits) -> AttachmentTooLarge:
    return AttachmentTooLarge(
        f"BinHex attachment is {exc.args[0]} bytes, limit {limits.max_attachment_bytes}"
    )
