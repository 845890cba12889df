"""Parse step, BinHex 4.0 files from old Mac mail (issue 16).

The BinHex texts are written by tests/support/binhex.py; the mails by hand
in tests/fixtures/mail/realworld/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.core.binhex import (
    BinHexBroken,
    BinHexTooLarge,
    decode_binhex,
    split_binhex,
)
from maild.core.limits import AttachmentTooLarge
from maild.core.parse import ParseLimits, parse_mail
from tests.support.binhex import binhex, six_bit, wrap

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "realworld"
REPORT = ("Ligne 1\r\n" + "x" * 300 + "\r\nfin\r\n").encode("mac_roman")


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def mixed(part_head: str, part_body: str) -> bytes:
    return (
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nJoint.\n"
        f"--b\n{part_head}\n\n{part_body}--b--\n"
    ).encode()


def test_binhex_part_is_its_file() -> None:
    mail = parse_mail(read("binhex_part.eml"))
    assert mail.text == "Le journal est joint."
    (journal,) = mail.attachments
    assert journal.filename == "journal.txt"
    assert journal.content_type == "text/plain"
    assert journal.data == REPORT


def test_binhex_in_a_plain_body_is_an_attachment_and_no_text() -> None:
    mail = parse_mail(read("binhex_in_body.eml"))
    assert mail.text == "Voici la capture de l'erreur.\n\n\nMerci.\n"
    (image,) = mail.attachments
    assert image.filename == "erreur.png"
    assert image.content_type == "image/png"
    assert image.data == b"\x89PNG\r\n\x1a\n" + bytes(200)


def test_binhex_part_with_a_bad_crc_stays_as_it_came() -> None:
    good = binhex("journal.txt", REPORT)
    bad = binhex("journal.txt", REPORT, data_crc_delta=1)
    head = "Content-Type: application/mac-binhex40\nContent-Disposition: attachment"
    raw = mixed(head, good + f"--b\n{head}\n\n" + bad)
    decoded, kept = parse_mail(raw).attachments
    assert decoded.data == REPORT
    assert kept.content_type == "application/mac-binhex40"
    assert kept.data.decode() == bad.rstrip("\n")  # the last newline: the boundary's
    assert kept.filename == "attachment-1.hqx"


def test_binhex_in_a_body_with_a_bad_crc_stays_text() -> None:
    good = binhex("one.bin", b"1")
    bad = binhex("two.bin", bytes(50), data_crc_delta=1)
    mail = parse_mail(b"From: a@example.com\n\nVoici.\n" + (good + bad).encode())
    (decoded,) = mail.attachments
    assert decoded.filename == "one.bin"
    assert mail.text == "Voici.\n" + bad


def test_binhex_over_the_attachment_limit_is_refused() -> None:
    text = binhex("big.bin", bytes(5000))
    head = "Content-Type: application/mac-binhex40"
    limits = ParseLimits(max_attachment_bytes=4000)
    with pytest.raises(AttachmentTooLarge):
        parse_mail(mixed(head, text), limits=limits)
    with pytest.raises(AttachmentTooLarge):
        parse_mail(b"From: a@example.com\n\n" + text.encode(), limits=limits)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x90" * 10, b"a" * 1000 + b"\x90\x00b", bytes(range(256)) * 4],
)
def test_decoder_round_trip(data: bytes) -> None:
    assert decode_binhex(binhex("f.bin", data), 1 << 20) == ("f.bin", data)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("no colons at all", BinHexBroken),
        ("::", BinHexBroken),  # nothing between the colons
        (":!!!:", BinHexBroken),  # a header cut short
        (":" + "~" * 8 + ":", BinHexBroken),  # not its alphabet
        (wrap(six_bit(b"\x90\x05abc")), BinHexBroken),  # a run of nothing
        (binhex("f", b"abc")[:-20] + ":", BinHexBroken),  # header cut short
        (binhex("f", bytes(range(90)))[:-40] + ":", BinHexBroken),  # data cut short
        (binhex("f", bytes(100)), BinHexTooLarge),
    ],
)
def test_decoder_refuses(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_binhex(text, 99)


def test_split_keeps_the_text_around_the_blocks() -> None:
    text = "a\n" + binhex("one", b"1") + "b\n" + binhex("two", b"2") + "c\n"
    rest, files = split_binhex(text, 10)
    assert rest == "a\nb\nc\n"
    assert files == (("one", b"1"), ("two", b"2"))
    assert split_binhex("no BinHex here", 10) == ("no BinHex here", ())
