"""Outbound mail: the MIME message, the SMTP relay against a sink, the .eml folder."""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maild.adapters.outgoing import mime as message_module
from maild.adapters.outgoing.mime import build_message, safe_filename
from maild.adapters.outgoing.relay import (
    EmlDirectory,
    Mailer,
    SmtpRelay,
    eml_name,
    make_mailer,
)
from maild.config import SmtpSettings
from maild.core.addresses import normalize_address, valid_recipients
from maild.domain import Attachment, Audience, OutboundMail
from maild.errors import DeliveryDeferred, DeliveryFailed
from tests.support.smtp_sink import SmtpSink, free_port

FROM = "helpdesk@example.com"
OUTLOOK_ID = (
    "DB7PR04MB4393F5C8E6B1E2E1D2A3B4C5D6E7F8A9B0C1D2E3"
    "@DB7PR04MB4393.eurprd04.prod.outlook.com"
)
WHEN = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


def make_mail(**changes: object) -> OutboundMail:
    mail = OutboundMail(
        message_id="t0k3n.a1b2c3@example.com",
        to=("jeanne.martin@example.com", "paul.durand@example.com"),
        subject="[HD I261129_0007] Imprimante en panne",
        text="Bonjour,\nLe ticket I261129_0007 a bien été enregistré.\n",
        html="<p>Bonjour,</p><p>Le ticket <strong>I261129_0007</strong>…</p>\n",
        in_reply_to="CAF=x1@mail.example.com",
        references=("CAF=x1@mail.example.com",),
        ticket_number="I261129_0007",
        audience=Audience.REQUESTER,
    )
    return replace(mail, **changes)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii")


# -- build_message ---------------------------------------------------------------


def test_headers_and_parts() -> None:
    data = build_message(make_mail(), FROM, "Support informatique", date=WHEN)
    message = parse(data)
    assert message["From"] == f"Support informatique <{FROM}>"
    assert message["To"] == "jeanne.martin@example.com, paul.durand@example.com"
    assert message["Subject"] == "[HD I261129_0007] Imprimante en panne"
    assert message["Date"] == "Mon, 30 Nov 2026 10:30:00 +0000"
    assert message["Message-ID"] == "<t0k3n.a1b2c3@example.com>"
    assert message["In-Reply-To"] == "<CAF=x1@mail.example.com>"
    assert message["References"] == "<CAF=x1@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Maild-Loop"] == FROM
    assert message["X-Maild-Ticket"] == "I261129_0007"
    assert message["Precedence"] is None
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == make_mail().text
    assert html.get_content().replace("\r\n", "\n") == make_mail().html
    assert message.defects == []
    assert b"\r\n" in data
    assert not re.search(rb"[^\r]\n", data)  # CRLF only
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()


def test_optional_headers_are_left_out() -> None:
    mail = make_mail(in_reply_to="", references=(), ticket_number="")
    message = parse(build_message(mail, FROM))
    for name in ("In-Reply-To", "References", "X-Maild-Ticket"):
        assert message[name] is None
    assert message["From"] == FROM
    assert message["Date"] is not None


def test_non_ascii_subject_and_sender_name_are_encoded() -> None:
    mail = make_mail(subject="[HD I261129_0007] Écran noir — « urgent »")
    data = build_message(mail, FROM, "Équipe support")
    assert data.isascii()
    message = parse(data)
    assert message["Subject"] == "[HD I261129_0007] Écran noir — « urgent »"
    assert message["From"].addresses[0].display_name == "Équipe support"


@pytest.mark.parametrize(
    "brk", ["\r", "\n", "\r\n", "\v", "\f", "\x85", "\u2028", "\u2029", "\x00"]
)
def test_line_breaks_never_reach_a_header(brk: str) -> None:
    mail = make_mail(
        subject=f"Panne{brk}Bcc: victim@example.org",
        ticket_number=f"I261129_0007{brk}X-Evil: 1",
        extra_headers=(("X-Note", f"a{brk}Bcc: victim@example.org"),),
    )
    data = build_message(mail, FROM, f"Support{brk}Bcc: victim@example.org")
    message = parse(data)
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert message["Subject"] == "Panne Bcc: victim@example.org"
    assert message["X-Note"] == "a Bcc: victim@example.org"
    assert message.defects == []
    for line in header_block(data).split("\r\n"):
        assert re.match(r"[A-Za-z-]+: |[ \t]", line), line


@pytest.mark.parametrize(
    "hostile",
    ["x@y\r\nBcc: victim@example.org", "a b@c", "<a@b>", "a@b>", "", "(comment)@b"],
)
def test_unsafe_thread_ids_are_dropped(hostile: str) -> None:
    mail = make_mail(in_reply_to=hostile, references=(hostile, "ok.1@example.com"))
    message = parse(build_message(mail, FROM))
    if hostile in ("<a@b>", "a@b>"):  # brackets are ours to add: the id is kept
        assert message["In-Reply-To"] == "<a@b>"
    else:
        assert message["In-Reply-To"] is None
    assert "ok.1@example.com" in message["References"]
    assert message["Bcc"] is None


def test_long_thread_ids_are_not_encoded() -> None:
    refs = (OUTLOOK_ID, "b" * 200 + "@example.com", "c@example.com")
    data = build_message(make_mail(in_reply_to=OUTLOOK_ID, references=refs), FROM)
    assert b"=?" not in data
    message = parse(data)
    assert message["In-Reply-To"] == f"<{OUTLOOK_ID}>"
    assert message["References"].split() == [f"<{r}>" for r in refs]


def test_invalid_recipients_are_skipped() -> None:
    mail = make_mail(
        to=(
            "not an address",
            "jeanne@example.com",
            "x@y\r\nBcc: z@w",
            "JEANNE@example.com",
            "paul@exa mple.com",
            "pé@example.com",
        )
    )
    message = parse(build_message(mail, FROM))
    assert message["To"] == "jeanne@example.com"


def test_no_valid_recipient_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no valid recipient"):
        build_message(make_mail(to=("nobody", "")), FROM)


def test_extra_headers_are_added_unless_reserved_or_malformed() -> None:
    extra = (
        ("X-Maild-Kind", "confirmation"),
        ("Subject", "second subject"),
        ("Bad Name", "x"),
        ("X-Colon:", "x"),
        ("Reply-To", "pool@example.com"),
    )
    message = parse(build_message(make_mail(extra_headers=extra), FROM))
    assert message["X-Maild-Kind"] == "confirmation"
    assert message.get_all("Subject") == ["[HD I261129_0007] Imprimante en panne"]
    assert message["Reply-To"] == "pool@example.com"
    assert message["Bad Name"] is None


def test_odd_bodies_do_not_break_the_message() -> None:
    mail = make_mail(
        text="nul\x00 and surrogate \udcff and " + "x" * 2000, html="<p>\u2028</p>"
    )
    message = parse(build_message(mail, FROM))
    text = message.get_body(("plain",))
    assert text is not None
    assert "\x00" not in text.get_content()
    assert "x" * 2000 in text.get_content()


def test_a_body_cannot_end_its_part() -> None:
    data = build_message(make_mail(text="a\n--=_maild_0\n--=_maild_0--\nb\n"), FROM)
    boundary = parse(data).get_boundary()
    assert boundary is not None
    assert data.count(f"--{boundary}".encode()) == 3  # two parts and the end
    text = parse(data).get_body(("plain",))
    assert text is not None
    assert (
        text.get_content().replace("\r\n", "\n") == "a\n--=_maild_0\n--=_maild_0--\nb\n"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "rapport.pdf",
        'devis "final" v2.xlsx',
        "rapport d'été 2026.pdf",
        "Пример отчёта за ноябрь — " * 8 + ".docx",  # 200 characters, 2 bytes each
        "图" * 200,
    ],
)
def test_attachments_keep_their_bytes_and_names(filename: str) -> None:
    data = build_message(
        make_mail(
            attachments=(Attachment(filename, "application/pdf", b"%PDF\x00\xff"),)
        ),
        FROM,
    )
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message = parse(data)
    assert message.get_content_type() == "multipart/mixed"
    assert message.defects == []
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == make_mail().text
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == safe_filename(filename)
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF\x00\xff"
    assert message["MIME-Version"] == "1.0"
    assert all(
        part["MIME-Version"] is None for part in message.walk() if part is not message
    )


STOCK = email.policy.compat32.clone(linesep="\r\n", max_line_length=998)
WORDS = st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
)


def header_values(text: str, words: list[str]) -> list[str]:
    """What build_message hands the generator: encoded, folded, joined values."""
    clean = message_module.clean_header(text)
    values = [
        message_module._text_header("Subject", clean),
        message_module._mailbox(clean, "a@example.com"),
        ", ".join(f"{w}@example.com" for w in words * 20),  # a To past 998
        "\r\n ".join(f"<{w}>" for w in words),  # References
    ]
    if clean.isascii():
        values += [clean, message_module._folded("Subject", clean)]
    return values


@given(st.text(max_size=2000), st.lists(WORDS, max_size=80))
def test_headers_are_written_as_the_stock_policy_would(
    text: str, words: list[str]
) -> None:
    # build_message's policy skips refolding what is folded already; the bytes
    # must be the ones compat32 gives, lines over 998 folded by it as before
    for value in header_values(text, words):
        for name in ("Subject", "To", "From", "References"):
            ours = message_module._POLICY.fold_binary(name, value)
            assert ours == STOCK.fold_binary(name, value)
            assert all(len(line) <= 998 for line in ours.split(b"\r\n"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jeanne@example.com", "jeanne@example.com"),
        ("  Jeanne.Martin+hd@Example.COM ", "Jeanne.Martin+hd@Example.COM"),
        ("jeanne@exämple.fr", "jeanne@xn--exmple-cua.fr"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("jeanne@localhost", None),
        ("jeanne", None),
        ("@example.com", None),
        ("a..b@example.com", None),
        (".a@example.com", None),
        ("pé@example.com", None),
        ("a b@example.com", None),
        ("a@b@example.com", None),
        ("a@-example.com", None),
        ("x" * 65 + "@example.com", None),
        ("a@example.com\r\nRCPT TO:<b@example.com>", None),
        ("Jeanne <jeanne@example.com>", None),
    ],
)
def test_normalize_address(raw: str, expected: str | None) -> None:
    assert normalize_address(raw) == expected


def test_valid_recipients_keeps_order_and_drops_duplicates() -> None:
    got = valid_recipients(["b@example.com", "bad", "a@example.com", "B@Example.com"])
    assert got == ("b@example.com", "a@example.com")


# -- SmtpRelay against the sink -----------------------------------------------


def relay_for(sink: SmtpSink, **changes: object) -> SmtpRelay:
    settings = SmtpSettings(
        host=sink.host,
        port=sink.port,
        starttls=False,
        username="",
        password="",
        from_address=FROM,
    )
    return SmtpRelay(replace(settings, **changes), timeout=5)  # type: ignore[arg-type]


def send(relay: Mailer, mail: OutboundMail) -> None:
    relay.send(mail.message_id, FROM, mail.to, build_message(mail, FROM))


def test_relay_reuses_one_connection(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    try:
        for n in range(5):
            send(relay, make_mail(message_id=f"m{n}@example.com"))
        received = smtp_sink.wait_for(count=5)
    finally:
        relay.close()
    assert smtp_sink.sessions == 1
    assert {m.session for m in received} == {1}
    assert [m.message["Message-ID"] for m in received] == [
        f"<m{n}@example.com>" for n in range(5)
    ]
    first = received[0]
    assert first.mail_from == FROM
    assert first.rcpt_tos == make_mail().to
    assert first.message["X-Maild-Ticket"] == "I261129_0007"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (451, DeliveryDeferred),
        (452, DeliveryDeferred),
        (550, DeliveryFailed),
        (554, DeliveryFailed),
    ],
)
def test_relay_translates_data_replies(
    smtp_sink: SmtpSink, code: int, error: type[Exception]
) -> None:
    relay = relay_for(smtp_sink)
    smtp_sink.fail_next(1, code=code)
    try:
        with pytest.raises(error, match=str(code)):
            send(relay, make_mail(message_id="refused@example.com"))
        send(relay, make_mail(message_id="accepted@example.com"))  # same session
    finally:
        relay.close()
    received = smtp_sink.wait_for()
    assert [m.message["Message-ID"] for m in received] == ["<accepted@example.com>"]
    assert smtp_sink.sessions == 1


def test_relay_421_reconnects_next_time(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    smtp_sink.fail_next(1, code=421)
    try:
        with pytest.raises(DeliveryDeferred, match="421"):
            send(relay, make_mail())
        send(relay, make_mail())
    finally:
        relay.close()
    assert len(smtp_sink.wait_for()) == 1


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        ((550, 550), DeliveryFailed),
        ((550, 450), DeliveryDeferred),
        ((451, 451), DeliveryDeferred),
    ],
)
def test_relay_all_recipients_refused(
    smtp_sink: SmtpSink, codes: tuple[int, int], error: type[Exception]
) -> None:
    mail = make_mail()
    for address, code in zip(mail.to, codes, strict=True):
        smtp_sink.refuse(address, code)
    relay = relay_for(smtp_sink)
    try:
        with pytest.raises(error, match="all recipients refused"):
            send(relay, mail)
    finally:
        relay.close()
    assert smtp_sink.messages == []


def test_relay_some_recipients_refused_is_a_success(
    smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    mail = make_mail()
    smtp_sink.refuse(mail.to[1], 550)
    relay = relay_for(smtp_sink)
    try:
        with caplog.at_level(logging.WARNING, logger="maild.adapters.outgoing.relay"):
            send(relay, mail)
    finally:
        relay.close()
    [received] = smtp_sink.wait_for()
    assert received.rcpt_tos == (mail.to[0],)
    assert any(
        mail.to[1] in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_relay_reconnects_after_the_server_restarts(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    try:
        send(relay, make_mail(message_id="before@example.com"))
        smtp_sink.restart()
        send(relay, make_mail(message_id="after@example.com"))
    finally:
        relay.close()
    received = smtp_sink.wait_for(count=2)
    assert [m.session for m in received] == [1, 2]
    assert smtp_sink.sessions == 2


def test_relay_reconnects_after_close(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    send(relay, make_mail())
    relay.close()
    relay.close()  # twice is harmless
    send(relay, make_mail())
    relay.close()
    assert smtp_sink.sessions == 2


def test_relay_unreachable_is_deferred() -> None:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        starttls=False,
        username="",
        password="",
        from_address=FROM,
    )
    relay = SmtpRelay(settings, timeout=2)
    with pytest.raises(DeliveryDeferred, match=r"relay 127\.0\.0\.1"):
        send(relay, make_mail())
    relay.close()


def test_relay_down_then_up(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    try:
        send(relay, make_mail())
        smtp_sink.stop()
        with pytest.raises(DeliveryDeferred):
            send(relay, make_mail())
        smtp_sink.start()
        send(relay, make_mail())
    finally:
        relay.close()
    assert len(smtp_sink.wait_for(count=2)) == 2


def test_relay_starttls_unavailable_is_deferred_and_logged(
    smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    relay = relay_for(smtp_sink, starttls=True)
    with (
        caplog.at_level(logging.ERROR, logger="maild.adapters.outgoing.relay"),
        pytest.raises(DeliveryDeferred, match="STARTTLS"),
    ):
        send(relay, make_mail())
    relay.close()
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert smtp_sink.messages == []


def test_relay_without_valid_recipient_fails(smtp_sink: SmtpSink) -> None:
    relay = relay_for(smtp_sink)
    data = build_message(make_mail(), FROM)
    with pytest.raises(DeliveryFailed, match="no valid recipient"):
        relay.send("x@example.com", FROM, ("bad", "a@b\r\nRSET"), data)
    relay.close()
    assert smtp_sink.sessions == 0


# -- EmlDirectory -------------------------------------------------------------


def test_eml_directory_writes_a_parseable_file(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mail = make_mail(message_id="t0k3n.a1b2c3")
    send(EmlDirectory(outbox), mail)
    [path] = outbox.iterdir()
    assert path.name == "t0k3n.a1b2c3.eml"
    message = parse(path.read_bytes())
    assert message["Message-ID"] == "<t0k3n.a1b2c3>"
    assert message["Subject"] == mail.subject


def test_eml_directory_is_idempotent(tmp_path: Path) -> None:
    mailer = EmlDirectory(tmp_path)
    mail = make_mail()
    send(mailer, mail)
    send(mailer, replace(mail, subject="sent again"))
    mailer.close()
    [path] = tmp_path.iterdir()
    assert path.name == hashlib.sha256(mail.message_id.encode()).hexdigest() + ".eml"
    assert parse(path.read_bytes())["Subject"] == "sent again"


@pytest.mark.parametrize(
    "message_id",
    [
        "../../escape",
        "/etc/passwd",
        "..",
        ".",
        "a/b",
        "a\\b",
        "x\x00y",
        "",
        "con",
        ".hidden",
        "-rf",
        "x" * 300,
        "é@example.com",
        "a b",
    ],
)
def test_hostile_message_id_stays_in_the_directory(
    tmp_path: Path, message_id: str
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    EmlDirectory(outbox).send(message_id, FROM, ("a@example.com",), b"Subject: x\r\n")
    [path] = list(tmp_path.rglob("*.eml"))
    assert path.parent == outbox
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.eml", path.name)
    assert path.resolve().is_relative_to(outbox.resolve())


@pytest.mark.parametrize(
    ("message_id", "name"),
    [
        ("abc.123_x-y", "abc.123_x-y"),
        ("<abc.123>", "abc.123"),
        ("a@b", hashlib.sha256(b"a@b").hexdigest()),
        ("../x", hashlib.sha256(b"../x").hexdigest()),
        (".x", hashlib.sha256(b".x").hexdigest()),
    ],
)
def test_eml_name(message_id: str, name: str) -> None:
    assert eml_name(message_id) == name


def test_eml_directory_leaves_no_temporary_file(tmp_path: Path) -> None:
    mailer = EmlDirectory(tmp_path)
    for n in range(3):
        send(mailer, make_mail(message_id=f"m{n}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m0.eml", "m1.eml", "m2.eml"]


def test_eml_directory_unwritable_is_deferred(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryDeferred, match="cannot write"):
        send(EmlDirectory(blocker / "outbox"), make_mail())


def test_make_mailer_picks_the_relay_only_when_configured(tmp_path: Path) -> None:
    settings = SmtpSettings("127.0.0.1", 25, False, "", "", FROM)
    assert isinstance(make_mailer(settings, tmp_path), SmtpRelay)
    assert isinstance(make_mailer(None, tmp_path), EmlDirectory)


@given(
    st.text(max_size=300),
    st.text(max_size=3000),
    st.text(max_size=1000),
    st.lists(st.binary(max_size=400), max_size=3),
)
def test_the_mail_is_laid_out_as_the_email_package_writes_it(
    subject: str, text: str, html: str, files: list[bytes]
) -> None:
    # build_message writes the parts itself; read back and written again by
    # the email package's own generator, the bytes must not change
    attachments = tuple(
        Attachment(f"pièce {n}.pdf", "application/pdf", data)
        for n, data in enumerate(files)
    )
    data = build_message(
        make_mail(subject=subject, text=text, html=html, attachments=attachments),
        FROM,
        "Helpdesk",
        date=WHEN,
    )
    assert email.message_from_bytes(data).as_bytes(policy=STOCK) == data
