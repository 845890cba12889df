"""Parse step on mail as it is found in the wild (issue 16), on written fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.core.limits import AttachmentTooLarge
from maild.core.parse import ParseLimits, content_hash, head_of, parse_mail
from maild.domain import Person

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "realworld"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- headers before headers -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sender", "subject", "text"),
    [
        (
            "escaped_mbox_separator.eml",
            Person("Jeanne Martin", "jeanne@example.org"),
            "Scanner du 3e hors service",
            "Le scanner du 3e étage ne répond plus.\n",
        ),
        (
            "stray_line_before_headers.eml",
            Person("Paul Durand", "paul@example.org"),
            "VPN refuses my password",
            "Since this morning the VPN refuses my password.\n",
        ),
    ],
)
def test_lines_before_the_headers_are_skipped(
    name: str, sender: Person, subject: str, text: str
) -> None:
    raw = read(name)
    for mail in (parse_mail(raw), head_of(raw)):
        assert mail.sender == sender
        assert mail.subject == subject
    mail = parse_mail(raw)
    assert mail.text == text
    assert mail.raw_size == len(raw)
    assert mail.content_hash == content_hash(raw)  # the bytes as they came


def test_mbox_separator_after_a_blank_line_is_skipped() -> None:
    raw = (
        b"\nFrom bob@example.org Sat Jan  3 01:05:34 2025\n"
        b"From: Bob <bob@example.org>\nSubject: hi\n\nbody\n"
    )
    mail = parse_mail(raw)
    assert mail.sender == Person("Bob", "bob@example.org")
    assert mail.text == "body\n"


def test_only_a_few_lines_are_skipped() -> None:
    raw = b"".join(b"line %d of a note\n" % i for i in range(7))
    raw += b"From: Bob <bob@example.org>\n\nbody\n"
    mail = parse_mail(raw)
    assert mail.sender.address == ""  # no header block near the top: all body
    assert mail.text.startswith("line 0 of a note\n")


def test_a_normal_mail_keeps_its_hash() -> None:
    raw = b"From: Bob <bob@example.org>\nReceived: by mx\nSubject: hi\n\nbody\n"
    assert parse_mail(raw).content_hash == content_hash(raw)
    assert content_hash(raw) == content_hash(b"Received: by mx2\n" + raw)


# --- every attachment named -------------------------------------------------


def test_every_attachment_gets_a_name() -> None:
    mail = parse_mail(read("unnamed_parts.eml"))
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("image-1.png", "image/png"),
        ("Re Printer broken.eml", "message/rfc822"),
        ("forwarded-message-1.eml", "message/rfc822"),
        ("attachment-1.bin", "application/octet-stream"),
    ]
    image = mail.attachments[0]
    assert image.is_inline
    assert image.content_id == "shot@example.org"
    assert mail.attachments[3].data == b"\x00\x01\x02\x03"


def test_generated_names_are_unique_within_the_mail() -> None:
    forward = (
        "--o\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        "Subject: {subject}\n\nx\n"
    )
    raw = (
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=o\n\n"
        "--o\nContent-Type: text/plain\n\nbody\n"
        + forward.format(subject="Re: a/b")
        + forward.format(subject="Re: a/b")
        + forward.format(subject=" .. ")
        + "--o\nContent-Type: image/gif\n\nx\n"
        "--o\nContent-Type: image/gif\n\nx\n"
        "--o--\n"
    ).encode()
    names = [a.filename for a in parse_mail(raw).attachments]
    assert names == [
        "Re a b.eml",
        "Re a b-2.eml",
        "forwarded-message-1.eml",
        "image-1.gif",
        "image-2.gif",
    ]
    assert names == [a.filename for a in parse_mail(raw).attachments]  # stable


# --- uuencoded files in the body --------------------------------------------

SPOOLER_LOG = b"".join(
    b"2025-03-06 08:%02d spooler: paper jam in tray 2\n" % i for i in range(6)
)


def test_uuencoded_file_in_the_body_is_an_attachment() -> None:
    mail = parse_mail(read("uuencoded_in_body.eml"))
    assert mail.text == (
        "The printer on floor 2 jams every morning, log below.\n\n\nHugo\n"
    )
    (log,) = mail.attachments
    assert (log.filename, log.content_type, log.data) == (
        "spooler.log",
        "application/octet-stream",
        SPOOLER_LOG,
    )


def test_uuencoded_file_with_crlf_and_a_guessed_type() -> None:
    raw = read("uuencoded_in_body.eml").replace(b"spooler.log", b"jam.png")
    raw = raw.replace(b"\n", b"\r\n")
    mail = parse_mail(raw)
    assert "begin" not in mail.text
    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("jam.png", "image/png", SPOOLER_LOG)
    ]


def test_uuencoded_file_over_the_limit_is_refused() -> None:
    with pytest.raises(AttachmentTooLarge):
        parse_mail(read("uuencoded_in_body.eml"), limits=ParseLimits(100))


def test_begin_without_end_is_text() -> None:
    raw = b"From: a@example.com\n\nbegin 644 notes.txt\nM86)C\nno end here\n"
    mail = parse_mail(raw)
    assert mail.text == raw.split(b"\n\n", 1)[1].decode()
    assert mail.attachments == ()


def test_uuencoded_lines_padded_or_broken_are_read_as_far_as_they_go() -> None:
    raw = (
        b"From: a@example.com\n\nlog:\nbegin 600 a.txt\n"
        b"#86)C=W=W=W\n"  # padded past the 3 bytes it declares
        b"#{{{{{{{{\n"  # not uuencoded at all: skipped
        b"#86)C\n`\nend\n"
    )
    (file,) = parse_mail(raw).attachments
    assert (file.filename, file.data) == ("a.txt", b"abcabc")
