"""Hostile and malformed mail: limits, resource bombs, broken MIME, header reading.

The fixtures in tests/fixtures/mail/hostile/ were written for these tests;
each ends as a mail with the best text that can be recovered, or as a
MailRejected whose reason code the quarantine and the sender's notice use.
"""

from __future__ import annotations

import binascii
import re
import time
from pathlib import Path

import pytest

from maild.core import notices
from maild.core.limits import (
    REFUSAL_REASONS,
    AttachmentTooLarge,
    HeadersTooLarge,
    ParseLimits,
    TooDeep,
    TooManyParts,
    check_delimiters,
)
from maild.core.notify import MailRefused, notifications_for
from maild.core.parse import HEAD_BYTES, head_of, parse_mail
from maild.domain import Audience, InboundMail
from maild.errors import (
    LoopDetected,
    MailRejected,
    MailTooLarge,
    ParseTimeout,
    UnparseableMail,
)
from tests.support.binhex import LEAD, six_bit, wrap

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "hostile"
BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00]")
MARIE = "marie@example.com"


def load(name: str) -> bytes:
    return (HOSTILE / name).read_bytes()


# --- resource bombs -----------------------------------------------------------


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return (
        b"From: a@example.com\n"
        + opening
        + b"Content-Type: text/plain\n\nx\n"
        + closing
    )


def many_parts(count: int, boundary: bytes = b"b") -> bytes:
    parts = b"".join(
        b"--%s\nContent-Type: text/plain\n\n%d\n" % (boundary, i) for i in range(count)
    )
    return (
        b'From: a@example.com\nContent-Type: multipart/mixed; boundary="%s"\n\n'
        % boundary
        + parts
        + b"--%s--\n" % boundary
    )


def header_lines(count: int) -> bytes:
    return (
        b"From: a@example.com\n"
        + b"".join(b"X-Line-%d: v\n" % i for i in range(count))
        + b"\nbody\n"
    )


def one_attachment(size: int) -> bytes:
    return (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nsee attached\n"
        b"--b\nContent-Type: application/octet-stream\n"
        b"Content-Disposition: attachment; filename=big.bin\n\n"
        + b"x" * size
        + b"\n--b--\n"
    )


@pytest.mark.parametrize(
    ("name", "raw", "error", "reason"),
    [
        ("100 levels of nesting", nested(100), TooDeep, "too_deep"),
        # 2,000 nested multiparts are 2,000 parts: refused before parsing
        ("2,000 levels of nesting", nested(2000), TooManyParts, "too_many_parts"),
        ("10,000 parts", many_parts(10_000), TooManyParts, "too_many_parts"),
        (
            "100,000 header lines",
            header_lines(100_000),
            HeadersTooLarge,
            "headers_too_large",
        ),
    ],
)
def test_resource_bombs_are_refused_quickly(
    name: str, raw: bytes, error: type[MailRejected], reason: str
) -> None:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        parse_mail(raw)
    elapsed = time.monotonic() - started
    print(f"\n{name}: {len(raw)} bytes refused in {elapsed:.3f} s ({reason})")
    assert caught.value.reason == reason
    assert elapsed < 2.0, name


@pytest.mark.parametrize(
    ("raw", "limits", "error"),
    [
        (nested(5), ParseLimits(max_mime_depth=4), TooDeep),
        (nested(3000), ParseLimits(max_mime_depth=10**6, max_parts=10**6), TooDeep),
        (many_parts(6), ParseLimits(max_parts=5), TooManyParts),
        (header_lines(40), ParseLimits(max_header_bytes=256), HeadersTooLarge),
        (
            one_attachment(101),
            ParseLimits(max_attachment_bytes=100),
            AttachmentTooLarge,
        ),
    ],
)
def test_each_limit_has_its_reason(
    raw: bytes, limits: ParseLimits, error: type[MailRejected]
) -> None:
    with pytest.raises(error) as caught:
        parse_mail(raw, limits=limits)
    assert caught.value.reason in REFUSAL_REASONS


def test_nesting_past_the_interpreter_is_refused_with_a_reason() -> None:
    # With the limits lifted, the depth Python itself can recurse is the bound.
    limits = ParseLimits(max_mime_depth=10**6, max_parts=10**6)
    with pytest.raises(TooDeep, match="nested too deeply"):
        parse_mail(nested(3000), limits=limits)


@pytest.mark.parametrize(
    ("raw", "limits"),
    [
        (nested(4), ParseLimits(max_mime_depth=5)),
        (many_parts(4), ParseLimits(max_parts=5)),
        (header_lines(5), ParseLimits(max_header_bytes=256)),
        (one_attachment(100), ParseLimits(max_attachment_bytes=100)),
    ],
)
def test_just_within_the_limits_parses(raw: bytes, limits: ParseLimits) -> None:
    assert parse_mail(raw, limits=limits).sender.address == "a@example.com"


def test_reason_codes_are_the_ones_senders_are_told() -> None:
    codes = {
        error.reason
        for error in (
            MailTooLarge,
            TooManyParts,
            TooDeep,
            HeadersTooLarge,
            AttachmentTooLarge,
            ParseTimeout,
            UnparseableMail,
        )
    }
    assert codes == REFUSAL_REASONS
    assert len(codes) == 7
    assert LoopDetected.reason not in REFUSAL_REASONS


@pytest.mark.parametrize(
    ("raw", "is_refused"),
    [
        (many_parts(6), True),
        (many_parts(6, b"with space"), True),
        (many_parts(5), False),  # five delimiters: the closing one is not counted
        (many_parts(6).replace(b"--b\n", b"--b  \n"), True),  # trailing blanks
        (b"From: a@example.com\n\n" + b"--b\n" * 100, False),  # no boundary declared
        (many_parts(6).replace(b"boundary=", b"boundary = "), True),
    ],
)
def test_delimiters_are_counted_before_parsing(raw: bytes, is_refused: bool) -> None:
    limits = ParseLimits(max_parts=5)
    if is_refused:
        with pytest.raises(TooManyParts):
            check_delimiters(raw, limits)
    else:
        check_delimiters(raw, limits)


# --- malformed mail: the best text there is -----------------------------------


@pytest.mark.parametrize(
    ("name", "sender", "subject", "text", "attachments"),
    [
        (
            "broken_charset.eml",
            MARIE,
            "Imprimante HS",
            "le caf\ufffd a coul\ufffd dans l'imprimante",
            (),
        ),
        # an unknown charset declares nothing: its 8-bit bytes are guessed
        ("unknown_charset.eml", MARIE, "et lisible", "Mon écran reste noir", ()),
        (
            "raw_8bit_headers.eml",
            "helene@example.com",
            "Problème d'accès à l'intranet",
            "Je n'arrive plus à me connecter.",
            ("relevé.pdf",),
        ),
        (
            "encoded_names.eml",
            MARIE,
            "Pièces jointespénibles",
            "Voir les pièces jointes.",
            ("rapport d'activité été.pdf", "capture écran.png", "notes détaillées.txt"),
        ),
        (
            "missing_boundary.eml",
            MARIE,
            "Sans frontière",
            "Le VPN ne se connecte plus.",
            (),
        ),
        (
            "wrong_boundary.eml",
            MARIE,
            "Mauvaise frontière",
            "La messagerie est lente.",
            (),
        ),
        (
            "unclosed_multipart.eml",
            MARIE,
            "Multipart sans fin",
            "Le poste redémarre tout seul.",
            ("log.bin",),
        ),
        (
            "nested_rfc822.eml",
            MARIE,
            "Tr: Tr: message transféré",
            "Voici le message reçu, que je ne comprends pas.",
            ("transfert.eml",),
        ),
        (
            "uuencode.eml",
            MARIE,
            "Fichier uuencodé",
            "Le fichier est joint en uuencode.",
            ("notes.txt",),
        ),
        (
            "uuencode_inline.eml",  # the file is an attachment (issue 16)
            MARIE,
            "uuencode dans le texte",
            "voici le journal :\n\n\nMerci.",
            ("notes.txt",),
        ),
        (
            "tnef_winmail.eml",
            MARIE,
            "Compte rendu Outlook",
            "Compte rendu en piece jointe.",
            ("winmail.dat",),
        ),
        ("headers_only.eml", MARIE, "", "", ()),
        ("blank_body.eml", MARIE, "Sans texte", "", ()),
        ("bad_base64.eml", MARIE, "Base64 abîmé", "Le scanner ne r", ()),
        ("nul_bytes.eml", MARIE, "nulcaractère", "Le clavier ne répond plus.", ()),
        (
            "html_script.eml",
            MARIE,
            "<script>alert('sujet')</script>",  # text: escaped where it is shown
            "L'écran clignote.",
            (),
        ),
    ],
)
def test_malformed_mail_keeps_the_best_text(
    name: str, sender: str, subject: str, text: str, attachments: tuple[str, ...]
) -> None:
    mail = parse_mail(load(name))
    assert mail.sender.address == sender
    assert subject in mail.subject
    assert text in mail.text
    assert tuple(a.filename for a in mail.attachments) == attachments


def test_uuencoded_part_is_decoded() -> None:
    (notes,) = parse_mail(load("uuencode.eml")).attachments
    assert notes.data == b"".join(b"ligne de notes %d\n" % i for i in range(3))


def test_winmail_dat_is_kept_as_it_came() -> None:
    (winmail,) = parse_mail(load("tnef_winmail.eml")).attachments
    assert winmail.content_type == "application/ms-tnef"
    assert winmail.data.startswith(b"\x78\x9f\x3e\x22")


def test_html_only_mail_loses_its_scripts() -> None:
    text = parse_mail(load("html_script.eml")).text
    assert "alert" not in text
    assert "<" not in text


@pytest.mark.parametrize("name", ["empty.eml", "injection_from.eml"])
def test_mail_without_a_usable_sender_has_none(name: str) -> None:
    # classify makes it an outsider: quarantined, never answered
    assert parse_mail(load(name)).sender.address == ""


@pytest.mark.parametrize("path", sorted(HOSTILE.glob("*.eml")), ids=lambda p: p.name)
def test_no_line_break_survives_in_a_one_line_value(path: Path) -> None:
    try:
        mail = parse_mail(path.read_bytes())
    except MailRejected:
        return
    values = [mail.subject, mail.message_id, *mail.in_reply_to, *mail.references]
    for person in (mail.sender, *mail.to, *mail.cc, *mail.reply_to):
        values += [person.name, person.address]
    values += [a.filename for a in mail.attachments]
    values += [a.content_type for a in mail.attachments]
    for value in values:
        assert not BREAKS.search(value), (path.name, value)


def test_hostile_file_names_are_kept_as_metadata_only() -> None:
    mail = parse_mail(load("hostile_names.eml"))
    names = [a.filename for a in mail.attachments]
    assert names[:4] == [
        "../../etc/passwd",
        "/etc/cron.d/maild",
        "..\\..\\windows\\system32\\evil.dll",
        "nulbyte.txt",  # the NUL is gone
    ]
    assert len(names[4]) == 999
    assert names[5:] == [
        "CON",
        "aux.txt",
        "\u2025\u2215etc\u2215passwd",
        "\uff0e\uff0e\uff0fsecret.txt",
        "\u202egnp.exe",
        ".",
        "attachment-1.bin",  # no name: one from its type (issue 16)
    ]


def test_injected_header_values_stay_in_one_value() -> None:
    mail = parse_mail(load("injection.eml"))
    assert mail.sender.address == "eve@example.com"
    assert mail.sender.name == "Eve X-Evil: 1 Bcc: victim@example.org"
    assert mail.subject.startswith("Hello Bcc: victim@example.org")
    assert [a.filename for a in mail.attachments] == [
        "evil Bcc: victim@example.org.txt"
    ]
    assert [p.address for p in mail.cc] == ["watcher@example.com"]


@pytest.mark.parametrize(("length", "kept"), [(990, True), (1000, False)])
def test_message_ids_longer_than_a_line_are_dropped(length: int, kept: bool) -> None:
    msgid = "a" * length + "@x"
    raw = f"From: a@example.com\nMessage-ID: <{msgid}>\nReferences: <{msgid}>\n\nx\n"
    mail = parse_mail(raw.encode())
    assert (mail.message_id, mail.references) == (
        (msgid, (msgid,)) if kept else ("", ())
    )


def test_names_are_bounded_as_the_store_keeps_them() -> None:
    mail = parse_mail(b"From: " + b"N" * 400 + b" <n@example.com>\n\nx\n")
    assert mail.sender.name == "N" * 255
    assert mail.sender.address == "n@example.com"


# --- the header block alone: who to tell about a refused mail -------------------


@pytest.mark.parametrize(
    ("raw", "sender"),
    [
        (nested(2000), "a@example.com"),
        (header_lines(100_000), "a@example.com"),
        (b"From: Marie <Marie@Example.com>\nSubject: x\n\nbody", MARIE),
        (b"Subject: no sender\n\nbody", None),
        (b"", None),
        (b"\x00\xff\xfe garbage \x00\n\n", None),
        (b"X-Pad: " + b"x" * HEAD_BYTES + b"\nFrom: late@example.com\n\n", None),
        (load("injection_from.eml"), None),
        (load("raw_8bit_headers.eml"), "helene@example.com"),
        (
            b"From: =?utf-8?q?Eve_=3Cmallory@evil.org=3E?= <eve@example.com>\n\n",
            "eve@example.com",
        ),
    ],
)
def test_sender_of_reads_the_header_block_only(raw: bytes, sender: str | None) -> None:
    assert (head_of(raw).sender.address or None) == sender


def test_head_of_reads_what_classification_needs() -> None:
    raw = (
        b"From: Bot <bot@example.com>\nSubject: =?utf-8?q?R=C3=A9ponse?=\n"
        b"Message-ID: <m1@example.com>\nIn-Reply-To: <a1@example.com>\n"
        b"Auto-Submitted: auto-replied\nContent-Type: multipart/report;"
        b" report-type=delivery-status; boundary=x\n\n" + b"--x\n" * 10_000
    )
    head = head_of(raw, "", ("helpdesk@example.com",))
    assert isinstance(head, InboundMail)
    assert (head.subject, head.message_id, head.in_reply_to) == (
        "Réponse",
        "m1@example.com",
        ("a1@example.com",),
    )
    assert head.auto.auto_submitted == "auto-replied"
    assert head.auto.is_delivery_report
    assert head.auto.is_null_return_path
    assert head.envelope_recipients == ("helpdesk@example.com",)
    assert (head.text, head.attachments, head.raw_size) == ("", (), len(raw))


def test_head_of_is_cheap_on_a_large_mail() -> None:
    raw = b"From: a@example.com\n\n" + b"x\n" * 10_000_000
    started = time.monotonic()
    assert head_of(raw).sender.address == "a@example.com"
    assert time.monotonic() - started < 0.5


# --- the refusal notice -------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(REFUSAL_REASONS))
def test_refused_mail_tells_its_sender_once_within_the_caps(reason: str) -> None:
    (notice,) = notifications_for(
        MailRefused(MARIE, reason, "Imprimante", "m1@example.com"), "pool@example.com"
    )
    assert notice.template == "rejected"
    assert notice.audience is Audience.SENDER
    assert notice.to == (MARIE,)
    assert notice.notice == notices.Rejected(
        refused_subject="Imprimante", reason=reason
    )
    assert notice.in_reply_to == "m1@example.com"
    assert notice.is_capped
    assert notice.ticket is None


# --- the decoders of issue 16: BinHex, encoded words, charset guesses ----------


def binhex_mail(*texts: str) -> bytes:
    parts = b"".join(
        b"--b\nContent-Type: application/mac-binhex40\n\n" + text.encode() + b"\n"
        for text in texts
    )
    return (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nsee attached\n" + parts + b"--b--\n"
    )


def binhex_of_ones(size: int, *, is_crc_right: bool = True) -> str:
    """A BinHex of `size` bytes 0x01 written as runs: 127 times smaller."""
    header = b"\x01f\0TEXTttxt\0\0" + size.to_bytes(4, "big") + bytes(4)
    crc = binascii.crc_hqx(b"\x01" * size, 0) ^ (0 if is_crc_right else 1)
    runs, rest = divmod(size - 1, 254)
    stream = header + binascii.crc_hqx(header, 0).to_bytes(2, "big")
    stream += (
        b"\x01" + b"\x90\xff" * runs + (b"\x90" + bytes([rest + 1]) if rest else b"")
    )
    stream += crc.to_bytes(2, "big").replace(b"\x90", b"\x90\x00") + b"\0\0"
    return f"{LEAD}\n{wrap(six_bit(stream))}\n"


def binhex_declaring(size: int) -> str:
    header = b"\x01f\0TEXTttxt\0\0" + size.to_bytes(4, "big") + bytes(4)
    stream = header + binascii.crc_hqx(header, 0).to_bytes(2, "big") + b"\x01"
    return f"{LEAD}\n{wrap(six_bit(stream))}\n"


def subject_bomb(word: bytes) -> bytes:
    words = word * (200_000 // len(word))
    return b"From: a@example.com\nSubject: " + words + b"\n\nbody\n"


def test_binhex_declaring_4_gb_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(AttachmentTooLarge):
        parse_mail(binhex_mail(binhex_declaring(2**32 - 1)))
    assert time.monotonic() - started < 2.0


def test_binhex_runs_to_20_mb_are_read_within_the_budget() -> None:
    size = 20_000_000
    raw = binhex_mail(binhex_of_ones(size), binhex_of_ones(size, is_crc_right=False))
    started = time.monotonic()
    mail = parse_mail(raw)
    elapsed = time.monotonic() - started
    print(f"\n{len(raw)} bytes of BinHex to 2 x 20 MB in {elapsed:.3f} s")
    assert elapsed < 2.0
    decoded, kept = mail.attachments
    assert decoded.data == b"\x01" * size
    assert kept.content_type == "application/mac-binhex40"  # CRC wrong: as it came


def test_binhex_runs_in_a_plain_body_are_read_within_the_budget() -> None:
    raw = b"From: a@example.com\n\nsee below\n" + binhex_of_ones(20_000_000).encode()
    started = time.monotonic()
    mail = parse_mail(raw)
    assert time.monotonic() - started < 2.0
    (decoded,) = mail.attachments
    assert len(decoded.data) == 20_000_000
    assert mail.text == "see below\n"


@pytest.mark.parametrize(
    ("name", "raw", "start"),
    [
        (
            "200 KB of GB2312-labelled words beyond GB2312",
            subject_bomb(b"=?gb2312?b?6UY=?= "),
            "镕镕",
        ),
        (
            "200 KB of words, charsets alternating",
            subject_bomb(b"=?shift_jis?b?h0A=?= =?iso-8859-1?q?=80?= "),
            "①€①€",
        ),
        (
            "200 KB of good and broken words",
            subject_bomb(b"=?utf-8?q?caf=C3=A9?= =?utf-8?b?QUJDR?= "),
            "café =?utf-8?b?QUJDR?= café",
        ),
        ("200 KB of raw 8-bit Subject", subject_bomb("打印机".encode("gb18030")), "打"),
    ],
)
def test_endless_encoded_words_are_read_within_the_budget(
    name: str, raw: bytes, start: str
) -> None:
    started = time.monotonic()
    mail = parse_mail(raw)
    elapsed = time.monotonic() - started
    print(f"\n{name}: {len(raw)} bytes in {elapsed:.3f} s")
    assert elapsed < 2.0, name
    assert mail.subject.startswith(start)
