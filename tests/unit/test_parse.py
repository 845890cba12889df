"""Parse step: raw bytes -> InboundMail, on written fixtures and built mails."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maild.core.parse import ParseLimits, content_hash, parse_mail
from maild.domain import Attachment, AuthResultsBlock, InboundMail, Person
from maild.errors import MailTooLarge, UnparseableMail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"


def load(name: str) -> InboundMail:
    return parse_mail((FIXTURES / name).read_bytes())


def make_mail(*headers: str, body: str = "Hello.\n", charset: str = "utf-8") -> bytes:
    """Build a small single-part mail; headers are 'Name: value' strings."""
    head = ["From: Someone <someone@example.com>", "To: helpdesk@example.com"]
    head += list(headers)
    if not any(h.lower().startswith("content-type:") for h in headers):
        head.append(f"Content-Type: text/plain; charset={charset}")
    return ("\n".join(head) + "\n\n" + body).encode("utf-8")


# --- fixtures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sender", "subject", "text_start"),
    [
        (
            "new_ticket_fr_fields.eml",
            Person("Marie Curié", "marie.curie@example.com"),
            "Imprimante du 2ème étage en panne",
            "Application : Impression\nUrgence: Haute\nBénéficiaire:",
        ),
        (
            "new_ticket_en_fields.eml",
            Person("John Smith", "john.smith@example.com"),
            "VPN does not connect",
            "Application: VPN\nUrgency: low\n",
        ),
        (
            "outlook_html_and_text.eml",
            Person("Durand, Sophie", "sophie.durand@example.com"),
            "Accès refusé au partage \\\\srv01\\compta",
            "Bonjour,\n\nJe n'ai plus accès au partage de la comptabilité",
        ),
        (
            "html_only.eml",
            Person("Web Form", "noreply.form@example.com"),
            "Demande d'ouverture de compte",
            "Application: Messagerie\n\nBonjour,\n\nMerci de créer un compte",
        ),
        (
            "two_attachments_rfc2231.eml",
            Person("Paul Leroy", "paul.leroy@example.com"),
            "Fichiers en pièce jointe",  # raw UTF-8 in the header
            "Voici le relevé et le journal.",
        ),
        (
            "high_importance.eml",
            Person("Directeur", "directeur@example.com"),
            "Serveur de fichiers inaccessible",
            "Plus personne n'accède",
        ),
    ],
)
def test_fixture_sender_subject_and_text(
    name: str, sender: Person, subject: str, text_start: str
) -> None:
    mail = load(name)
    assert mail.sender == sender
    assert mail.subject == subject
    assert mail.text.startswith(text_start)
    assert "\r" not in mail.text


def test_html_only_mail_is_readable_text() -> None:
    text = load("html_only.eml").text
    assert "Lucie Bernard" in text
    assert "Service : RH" in text
    for markup in ("<p>", "<b>", "never shown", "ignored title", "color: red"):
        assert markup not in text


def test_french_mail_headers() -> None:
    mail = load("new_ticket_fr_fields.eml")
    assert mail.message_id == "fr-0001@mail.example.com"
    assert mail.to == (Person("Support informatique", "helpdesk@example.com"),)
    assert mail.cc == (Person("Pierre Martin", "pierre.martin@example.com"),)
    assert mail.envelope_sender == "marie.curie@example.com"  # from Return-Path
    assert mail.delivered_to == ("helpdesk@example.com",)
    assert mail.date == datetime(2026, 11, 30, 8, 12, 1, tzinfo=UTC)
    assert mail.text.endswith("« bourrage papier » depuis ce matin.\n\nMerci,\nMarie\n")
    assert not mail.is_high_importance
    assert mail.attachments == ()


def test_outlook_mail_is_human_and_keeps_authentication_results() -> None:
    mail = load("outlook_html_and_text.eml")
    assert mail.auto.has_x_autoreply is False  # X-Auto-Response-Suppress: All
    # Kept raw, folding and all, with the Received fields above it counted.
    assert mail.authentication_results == (
        AuthResultsBlock(
            (
                "mx.example.com;\n dkim=pass header.d=example.com;\n"
                " spf=pass smtp.mailfrom=example.com",
            ),
            received_above=1,
        ),
    )
    assert "<p>" not in mail.text


def test_two_attachments_byte_for_byte() -> None:
    mail = load("two_attachments_rfc2231.eml")
    binary, journal = mail.attachments
    assert binary == Attachment(
        filename="relevé d'été.bin",
        content_type="application/octet-stream",
        data=bytes(range(256)) + b"\x00\x00PDF-ish\xff\xfe",
    )
    assert journal.filename == "journal événements.txt"
    assert journal.content_type == "text/plain"
    assert journal.data == "ligne 1\nligne 2 é".encode()
    assert not journal.is_inline
    assert "ligne 1" not in mail.text


def test_inline_image_is_an_inline_attachment() -> None:
    mail = load("inline_image.eml")
    (image,) = mail.attachments
    assert image.filename == "erreur.png"
    assert image.content_type == "image/png"
    assert image.is_inline
    assert image.content_id == "erreur-1@example.com"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert mail.text == "Voici l'erreur :\n[image: erreur.png]\n"


def test_auto_reply_signals() -> None:
    mail = load("auto_reply_rfc3834.eml")
    assert mail.auto.auto_submitted == "auto-replied"
    assert mail.auto.precedence == "bulk"
    assert mail.auto.has_x_autoreply
    assert mail.auto.is_null_return_path
    assert mail.envelope_sender == ""
    assert mail.subject.startswith("Réponse automatique\xa0: [HD I261130_0001]")
    assert mail.in_reply_to == ("maild.I261130_0001.abcdef@helpdesk.example.com",)
    assert mail.references == (
        "fr-0001@mail.example.com",
        "maild.I261130_0001.abcdef@helpdesk.example.com",
    )
    assert mail.thread_refs[0] == mail.in_reply_to[0]


def test_bounce_signals() -> None:
    mail = load("bounce_dsn.eml")
    assert mail.auto.is_delivery_report
    assert mail.auto.is_null_return_path
    assert mail.sender == Person(
        "Mail Delivery System", "mailer-daemon@mail.example.com"
    )
    assert mail.delivered_to == ("helpdesk@example.com",)  # X-Original-To, same
    assert "550 5.1.1 User unknown" in mail.text
    assert [a.content_type for a in mail.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert b"Status: 5.1.1" in mail.attachments[0].data
    assert mail.text.endswith("550 5.1.1 User unknown\n")


def test_high_importance_fixture() -> None:
    assert load("high_importance.eml").is_high_importance


# --- headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Importance: High", True),
        ("Importance: normal", False),
        ("X-Priority: 1", True),
        ("X-Priority: 2 (High)", True),
        ("X-Priority: 3 (Normal)", False),
        ("Priority: urgent", True),
        ("Priority: normal", False),
        ("X-MSMail-Priority: High", True),
        ("X-MSMail-Priority: Low", False),
    ],
)
def test_high_importance(header: str, expected: bool) -> None:
    assert parse_mail(make_mail(header)).is_high_importance is expected


@pytest.mark.parametrize(
    ("header", "field", "expected"),
    [
        ("Auto-Submitted: No", "auto_submitted", "no"),
        ("Auto-Submitted: auto-generated", "auto_submitted", "auto-generated"),
        ("Precedence: Junk", "precedence", "junk"),
        ("X-Autoreply: yes", "has_x_autoreply", True),
        ("X-Autorespond: vacation", "has_x_autoreply", True),
        ("X-Auto-Response-Suppress: OOF, AutoReply", "has_x_autoreply", False),
        ("List-Id: Staff <staff.example.com>", "list_id", "Staff <staff.example.com>"),
        (
            "List-Unsubscribe: <mailto:leave@example.com>",
            "list_id",
            "<mailto:leave@example.com>",
        ),
        ("X-Maild-Loop: helpdesk@example.com", "is_maild_loop", True),
        ("X-Mailer: Loop 1.0", "is_maild_loop", False),
        ("Return-Path: <>", "is_null_return_path", True),
        ("Return-Path: <someone@example.com>", "is_null_return_path", False),
    ],
)
def test_auto_signals(header: str, field: str, expected: object) -> None:
    assert getattr(parse_mail(make_mail(header)).auto, field) == expected


def test_not_a_delivery_report_when_report_type_differs() -> None:
    raw = make_mail(
        "Content-Type: multipart/report; report-type=disposition-notification;"
        ' boundary="b"',
        body="--b\nContent-Type: text/plain\n\nread\n--b--\n",
    )
    mail = parse_mail(raw)
    assert not mail.auto.is_delivery_report
    assert mail.text == "read"


@pytest.mark.parametrize(
    ("given", "headers", "expected"),
    [
        (None, (), None),
        (None, ("Return-Path: <>",), ""),
        (None, ("Return-Path: <Bob@Example.COM>",), "bob@example.com"),
        ("", ("Return-Path: <bob@example.com>",), ""),
        ("Alice@Example.com", ("Return-Path: <>",), "alice@example.com"),
    ],
)
def test_envelope_sender(
    given: str | None, headers: tuple[str, ...], expected: str | None
) -> None:
    mail = parse_mail(make_mail(*headers), origin_envelope_sender=given)
    assert mail.envelope_sender == expected
    assert mail.auto.is_null_return_path is (expected == "")


def test_envelope_recipients_and_delivered_to() -> None:
    raw = make_mail(
        "Delivered-To: Helpdesk@Example.com",
        "Delivered-To: helpdesk@example.com",
        "X-Original-To: demandes@example.com",
    )
    mail = parse_mail(raw, envelope_recipients=("demandes@example.com",))
    assert mail.envelope_recipients == ("demandes@example.com",)
    assert mail.delivered_to == ("helpdesk@example.com", "demandes@example.com")


@pytest.mark.parametrize(
    ("headers", "message_id", "in_reply_to", "references"),
    [
        ((), "", (), ()),
        (("Message-ID: <a@x>",), "a@x", (), ()),
        (("Message-ID: bare@x",), "bare@x", (), ()),
        (("Message-ID: <>",), "", (), ()),
        (
            ("In-Reply-To: <p@x> (sent Monday)", "References: <r1@x>\n <r2@x>\t<p@x>"),
            "",
            ("p@x",),
            ("r1@x", "r2@x", "p@x"),
        ),
    ],
)
def test_message_ids(
    headers: tuple[str, ...],
    message_id: str,
    in_reply_to: tuple[str, ...],
    references: tuple[str, ...],
) -> None:
    mail = parse_mail(make_mail(*headers))
    assert (mail.message_id, mail.in_reply_to, mail.references) == (
        message_id,
        in_reply_to,
        references,
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Plain", "Plain"),
        ("Folded\n  over two lines", "Folded  over two lines"),
        ("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?=\n suite", "café crème suite"),
        # line breaks smuggled inside encoded words: CR LF VT FF NEL LS PS
        ("=?utf-8?b?YQ1iCmMLZAxl?=", "a b c d e"),
        ("=?utf-8?q?x=C2=85y=E2=80=A8z=E2=80=A9w?=", "x y z w"),
        # a broken word keeps its literal text; its neighbour is still read
        (
            "=?utf-8?q?broken_base64?= =?utf-8?b?QUJDR?=",
            "broken base64 =?utf-8?b?QUJDR?=",
        ),
        # an unknown charset: the literal text is the best there is
        ("=?x-no-such-charset?q?abc?=", "=?x-no-such-charset?q?abc?="),
    ],
)
def test_subject_is_decoded_on_one_line(subject: str, expected: str) -> None:
    assert parse_mail(make_mail(f"Subject: {subject}")).subject == expected


def test_latin1_raw_header_bytes() -> None:
    raw = b"From: a@example.com\nSubject: caf\xe9 cr\xe8me\n\nbody\n"
    assert parse_mail(raw).subject == "café crème"


def test_display_names_and_reply_to() -> None:
    raw = make_mail(
        "Reply-To: =?utf-8?q?=C3=89quipe?= <Team@Example.com>, other@example.com",
        'Cc: "Last, First" <First.Last@example.com>',
    )
    mail = parse_mail(raw)
    assert mail.reply_to == (
        Person("Équipe", "team@example.com"),
        Person("", "other@example.com"),
    )
    assert mail.cc == (Person("Last, First", "first.last@example.com"),)


def test_missing_from_gives_an_empty_sender() -> None:
    mail = parse_mail(b"To: helpdesk@example.com\nSubject: hi\n\nbody\n")
    assert mail.sender == Person("", "")
    assert mail.date is None


# --- body text --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain; charset=utf-8", b"a\x00b\r\nc\rd\n", "ab\nc\nd\n"),
        (
            "text/plain; charset=iso-2022-jp",
            b"\x1b$B$9$_$^$;$s\x1b(B\n",
            "すみません\n",
        ),
        ("text/plain; charset=gb2312", "镜头".encode("gb18030") + b"\n", "镜头\n"),
        ("text/plain; charset=iso-8859-1", b"\x80 caf\xe9\n", "€ café\n"),
        ("text/plain; charset=us-ascii", b"caf\xc3\xa9\n", "café\n"),
        ("text/plain", b"caf\xe9\n", "café\n"),  # no charset, not UTF-8
        ("text/plain; charset=utf-8", b"caf\xe9\n", "caf\ufffd\n"),
        ("text/plain; charset=no-such", b"caf\xc3\xa9\n", "café\n"),
        # a label that is no charset declares nothing: the bytes are guessed
        ("text/plain; charset=no-such", b"caf\xe9\n", "café\n"),
        ('text/plain; charset="utf\\x00-8"', b"ok\n", "ok\n"),
        ("text/html; charset=utf-8", b"<p>a&amp;b</p>\x00", "a&b\n"),
        ("text/html; charset=utf-8", b"   ", ""),
        ("application/pdf", b"%PDF", ""),
    ],
)
def test_body_text(content_type: str, body: bytes, expected: str) -> None:
    head = f"From: a@example.com\nContent-Type: {content_type}\n\n".encode()
    assert parse_mail(head + body).text == expected


def test_attached_message_text_stays_out_of_the_body() -> None:
    raw = make_mail(
        'Content-Type: multipart/mixed; boundary="o"',
        body=(
            "--o\nContent-Type: text/plain\n\nSee the attached mail.\n"
            "--o\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
            "Subject: inner\nFrom: x@example.com\n\nInner text.\n"
            "--o--\n"
        ),
    )
    mail = parse_mail(raw)
    assert mail.text == "See the attached mail."
    (inner,) = mail.attachments
    assert inner.content_type == "message/rfc822"
    assert inner.data == b"Subject: inner\nFrom: x@example.com\n\nInner text."


def test_a_message_shown_inline_is_text_but_not_the_senders_own() -> None:
    raw = make_mail(
        'Content-Type: multipart/mixed; boundary="o"',
        body=(
            "--o\nContent-Type: text/plain\n\nSee below.\n"
            "--o\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n"
            "Subject: inner\nFrom: x@example.com\n\nCLAIM\n"
            "--o--\n"
        ),
    )
    mail = parse_mail(raw)
    assert mail.text == "See below.\nCLAIM"  # a ticket's description keeps it
    assert mail.own_text == "See below."
    assert mail.command_text == "See below."  # commands: the sender's own text


def test_own_text_is_none_without_an_enclosed_message() -> None:
    mail = parse_mail(make_mail(body="CLAIM\n"))
    assert mail.own_text is None
    assert mail.command_text == mail.text == "CLAIM\n"


@pytest.mark.parametrize(
    ("head", "blocks"),
    [
        (
            "Authentication-Results: mx; dmarc=none\n"
            "Received: from a by mx\n"
            "Authentication-Results: mx; dkim=pass\n"
            "Authentication-Results: other; spf=pass\n"
            "Received: from b by a\n",
            (
                AuthResultsBlock(("mx; dmarc=none",), 0),
                AuthResultsBlock(("mx; dkim=pass", "other; spf=pass"), 1),
            ),
        ),
        (
            "Received: from a by mx\nX-Other: 1\n"
            "Authentication-Results: =?us-ascii?q?mx?=; dkim=pass\n",
            (AuthResultsBlock(("=?us-ascii?q?mx?=; dkim=pass",), 1),),
        ),
        ("Received: from a by mx\n", ()),
    ],
)
def test_authentication_results_are_kept_raw_in_blocks(
    head: str, blocks: tuple[AuthResultsBlock, ...]
) -> None:
    raw = head.encode() + make_mail(body="x\n")
    assert parse_mail(raw).authentication_results == blocks


def test_authentication_results_as_the_last_field() -> None:
    raw = b"From: a@example.com\nAuthentication-Results: mx; dmarc=pass\n\nx\n"
    blocks = (AuthResultsBlock(("mx; dmarc=pass",), 0),)
    assert parse_mail(raw).authentication_results == blocks


def test_attached_message_that_cannot_be_written_as_ascii_is_kept() -> None:
    raw = (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=o\n\n"
        b"--o\nContent-Type: text/plain\n\nhi\n"
        b"--o\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        b'Subject: inner\nContent-Type: multipart/alternative; boundary="gone"\n\n'
        b"caf\xc3\xa9\n--o--\n"
    )
    (inner,) = parse_mail(raw).attachments
    assert inner.data.startswith(b"Subject: inner\n")


def test_attached_multipart_container_is_one_attachment() -> None:
    raw = make_mail(
        'Content-Type: multipart/mixed; boundary="o"',
        body=(
            "--o\nContent-Type: text/plain\n\nbody\n"
            '--o\nContent-Type: multipart/alternative; boundary="i"\n'
            "Content-Disposition: attachment; filename=bundle\n\n"
            "--i\nContent-Type: text/plain\n\ninside\n--i--\n"
            "--o--\n"
        ),
    )
    mail = parse_mail(raw)
    assert mail.text == "body"
    (bundle,) = mail.attachments
    assert bundle.filename == "bundle"
    assert b"inside" in bundle.data


def test_named_inline_text_is_body_and_attachment() -> None:
    raw = make_mail(
        'Content-Type: multipart/mixed; boundary="o"',
        body=(
            "--o\nContent-Type: text/plain\n\nfirst\n"
            "--o\nContent-Type: text/plain\n"
            'Content-Disposition: inline; filename="notes.txt"\n\nsecond\n'
            "--o--\n"
        ),
    )
    mail = parse_mail(raw)
    assert mail.text == "first\nsecond"  # the parts, one after the other
    assert [(a.filename, a.is_inline, a.data) for a in mail.attachments] == [
        ("notes.txt", True, b"second")
    ]


@pytest.mark.parametrize(
    ("part_headers", "filename", "is_inline", "content_id"),
    [
        # a part without a name is named from its type (issue 16)
        (
            "Content-Type: image/png\nContent-ID: <Img-1@X>",
            "image-1.png",
            True,
            "Img-1@X",
        ),
        ("Content-Type: image/png", "image-1.png", False, ""),
        ("Content-Type: text/calendar; method=REQUEST", "attachment-1.ics", False, ""),
        (
            "Content-Type: text/plain\nContent-Disposition: attachment",
            "attachment-1.txt",
            False,
            "",
        ),
        ("Content-Type: application/x-unknown-kind", "attachment-1.bin", False, ""),
        (
            "Content-Type: application/zip\n"
            'Content-Disposition: attachment; filename="\xd0\xa4\xd0\x9d\xd0\xa1.zip"',
            "ФНС.zip",
            False,
            "",
        ),
        (
            "Content-Type: application/zip\n"
            'Content-Disposition: attachment; filename="caf\xe9.zip"',
            "café.zip",
            False,
            "",
        ),
        (
            "Content-Type: application/pdf; name*=utf-8''a%0Ab.pdf",
            "a b.pdf",
            False,
            "",
        ),
    ],
)
def test_attachment_metadata(
    part_headers: str, filename: str, is_inline: bool, content_id: str
) -> None:
    raw = (
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=o\n\n"
        "--o\nContent-Type: text/plain\n\nbody\n"
        f"--o\n{part_headers}\nContent-Transfer-Encoding: base64\n\nAAEC\n--o--\n"
    ).encode("latin-1")
    (attachment,) = parse_mail(raw).attachments
    assert attachment.filename == filename
    assert attachment.is_inline is is_inline
    assert attachment.content_id == content_id
    assert attachment.data == b"\x00\x01\x02"


# --- limits and failures ----------------------------------------------------


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


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--b\nContent-Type: text/plain\n\n%d\n" % i for i in range(count))
    return (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        + parts
        + b"--b--\n"
    )


@pytest.mark.parametrize(
    ("raw", "limits", "error", "reason"),
    [
        (
            make_mail("X-Pad: " + "x" * 300),
            ParseLimits(max_header_bytes=256),
            MailTooLarge,
            "header block is",
        ),
        (
            many_parts(5),
            ParseLimits(max_parts=5),
            MailTooLarge,
            "more than 5 MIME parts",
        ),
        (nested(4), ParseLimits(max_mime_depth=4), UnparseableMail, "deeper than 4"),
        (
            (FIXTURES / "two_attachments_rfc2231.eml").read_bytes(),
            ParseLimits(max_attachment_bytes=100),
            MailTooLarge,
            'attachment "relevé d\'été.bin" is 267 bytes, limit 100',
        ),
        (
            make_mail("Cc: =?utf-8?b?QUJDR?= <a@example.com>"),
            ParseLimits(),
            UnparseableMail,
            "parser failed: HeaderParseError",
        ),
    ],
)
def test_limits_and_failures(
    raw: bytes, limits: ParseLimits, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason.replace("(", r"\(")):
        parse_mail(raw, limits=limits)


def test_within_limits_parses() -> None:
    assert len(parse_mail(many_parts(4), limits=ParseLimits(max_parts=5)).text) > 0
    assert parse_mail(nested(3), limits=ParseLimits(max_mime_depth=4)).text == "x\n"


def test_mail_parser_crash_on_missing_epilogue_is_avoided() -> None:
    # mail-parser 4.8 raises AttributeError on this shape (SendGrid bounces)
    raw = (
        b"From: MAILER-DAEMON@example.com\nContent-Type: multipart/report;"
        b" report-type=delivery-status; boundary=outer\n\n"
        b"--outer\nContent-Type: text/plain\n\nnot delivered\n"
        b"--outer\nContent-Type: multipart/mixed; boundary=inner\n\nno inner start\n"
    )
    mail = parse_mail(raw)
    assert mail.auto.is_delivery_report
    assert mail.text == "not delivered"


# --- content hash -----------------------------------------------------------

TRACE = (
    b"Return-Path: <someone@example.com>\r\n"
    b"DELIVERED-TO: helpdesk@example.com\r\n"
    b"received: from mx.example.com (mx.example.com [192.0.2.1])\r\n"
    b"\tby mail.example.com with ESMTP id 123\r\n"
    b"\tfor <helpdesk@example.com>; Mon, 30 Nov 2026 09:00:00 +0100\r\n"
    b"X-Original-To : helpdesk@example.com\r\n"
)


def test_content_hash_ignores_redelivery_trace_headers() -> None:
    raw = (FIXTURES / "new_ticket_en_fields.eml").read_bytes()
    redelivered = TRACE + raw.replace(b"\n", b"\r\n")
    assert content_hash(redelivered) == content_hash(raw)
    assert parse_mail(redelivered).content_hash == parse_mail(raw).content_hash


@pytest.mark.parametrize(
    "changed",
    [
        b"Subject: other\n\nHello.\n",  # a different header
        b"Subject: same\n\nHello!\n",  # a different body
        b"Subject: same\n\nReceived: in the body counts\nHello.\n",
        b"Subject: same\nX-Received: not a trace header\n\nHello.\n",
    ],
)
def test_content_hash_sees_real_differences(changed: bytes) -> None:
    assert content_hash(b"Subject: same\n\nHello.\n") != content_hash(changed)


@pytest.mark.parametrize(
    ("raw", "same_as"),
    [
        (
            b"From a@example.com Mon Nov 30 2026\nReceived: x\nSubject: a\n\nbody\n",
            b"From a@example.com Mon Nov 30 2026\nSubject: a\n\nbody\n",
        ),
        (b"Subject: a\rReceived: x\r\rbody\r", b"Subject: a\n\nbody\n"),
        (b"Subject: no body\nReceived: x", b"Subject: no body\n"),
        (b"no headers\nReceived: x\n", b"no headers\nReceived: x\n"),
        (b"", b""),
    ],
)
def test_content_hash_of_odd_mails(raw: bytes, same_as: bytes) -> None:
    assert content_hash(raw) == hashlib.sha256(same_as).hexdigest()


def test_content_hash_of_plain_mail_is_sha256() -> None:
    raw = b"Subject: a\n\nbody\n"
    assert content_hash(raw) == hashlib.sha256(raw).hexdigest()
    assert content_hash(b"Received: x\n y\n" + raw) == hashlib.sha256(raw).hexdigest()


def test_raw_size() -> None:
    raw = make_mail()
    assert parse_mail(raw).raw_size == len(raw)
