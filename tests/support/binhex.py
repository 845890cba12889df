"""A BinHex 4.0 writer for the tests: Python 3.11 has none any more.

Writes what Mac mail clients wrote: the header (name, type, creator, fork
lengths), the data fork and an empty resource fork, each with its CRC-16,
run-length coded, in 6-bit characters, 64 to a line, between colons.
"""

from __future__ import annotations

import binascii

ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
LEAD = "(This file must be converted with BinHex 4.0)"


def binhex(name: str, data: bytes, *, data_crc_delta: int = 0) -> str:
    """Return the BinHex text of a file; data_crc_delta spoils its data CRC."""
    encoded_name = name.encode("mac_roman")
    header = (
        bytes([len(encoded_name)])
        + encoded_name
        + b"\0TEXTttxt\0\0"
        + len(data).to_bytes(4, "big")
        + (0).to_bytes(4, "big")
    )
    data_crc = binascii.crc_hqx(data, 0) ^ data_crc_delta
    stream = (
        header
        + binascii.crc_hqx(header, 0).to_bytes(2, "big")
        + data
        + data_crc.to_bytes(2, "big")
        + b"\0\0"  # the empty resource fork's CRC
    )
    return f"{LEAD}\n{wrap(six_bit(run_length(stream)))}\n"


def run_length(data: bytes) -> bytes:
    """Code runs of four or more as `byte 0x90 count`; 0x90 itself as `0x90 0`."""
    out = bytearray()
    at = 0
    while at < len(data):
        byte = data[at]
        count = 1
        while at + count < len(data) and data[at + count] == byte and count < 255:
            count += 1
        if byte == 0x90:
            out += b"\x90\x00"
            at += 1
        elif count >= 4:
            out += bytes((byte, 0x90, count))
            at += count
        else:
            out.append(byte)
            at += 1
    return bytes(out)


def six_bit(stream: bytes) -> str:
    bits = count = 0
    out = bytearray()
    for byte in stream:
        bits = (bits << 8 | byte) & 0xFFFF
        count += 8
        while count >= 6:
            count -= 6
            out.append(ALPHABET[bits >> count & 63])
    if count:
        out.append(ALPHABET[bits << (6 - count) & 63])
    return out.decode()


def wrap(encoded: str) -> str:
    text = f":{encoded}:"
    return "\n".join(text[at : at + 64] for at in range(0, len(text), 64))
