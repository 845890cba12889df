"""Parse step, charsets of headers and bodies as mail clients read them (issue 16).

Fixtures written for these tests: tests/fixtures/mail/realworld/*.eml and
mails built inline byte by byte.
"""

# Headers in Russian: their letters are the point.
# ruff: noqa: RUF001

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from maild.core.charsets import decode_declared, guess_undeclared
from maild.core.parse import head_of, parse_mail
from maild.domain import Person

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "realworld"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def word(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


def subject_of(raw_subject: bytes, body_head: bytes = b"") -> str:
    raw = b"From: a@example.com\nSubject: " + raw_subject + b"\n" + body_head
    return parse_mail(raw + b"\nbody\n").subject


# --- encoded words: labels read as the wider charset -------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        # GB2312 label, a character only GBK/GB18030 has
        (word("gb2312", "镕镕".encode("gb18030")), "镕镕"),
        # KS_C_5601 label, a syllable only CP949 (UHC) has
        (word("ks_c_5601-1987", "똠방".encode("cp949")), "똠방"),
        # Shift_JIS label, NEC and IBM characters of CP932
        (word("shift_jis", "①髙".encode("cp932")), "①髙"),
        # ISO-8859-1 label, Windows-1252 bytes (euro sign, curly quotes)
        ("=?iso-8859-1?q?=80_=93caf=E9=94?=", "€ “café”"),
        # ISO-2022-JP label, Windows' NEC row 13 (CP50221)
        ("=?ISO-2022-JP?B?GyRCLSEbKEI=?=", "①"),
    ],
)
def test_encoded_word_labels_read_as_their_superset(
    encoded: str, expected: str
) -> None:
    assert subject_of(encoded.encode()) == expected


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        # a CP932 character split between words of one label, over a folded line
        (
            word("shift_jis", "①髙".encode("cp932")[:3])
            + "\r\n\t"
            + word("shift_jis", "①髙".encode("cp932")[3:]),
            "①髙",
        ),
        # a UTF-8 character split, a word in another charset, a broken word:
        # every word that can be read is read
        (
            "=?utf-8?q?caf=C3?=\n =?utf-8?q?=A9?= =?iso-8859-1?q?=80?= "
            "=?utf-8?b?QUJDR?=",
            "café€ =?utf-8?b?QUJDR?=",
        ),
    ],
)
def test_encoded_words_split_across_lines_are_joined(
    encoded: str, expected: str
) -> None:
    assert subject_of(encoded.encode()) == expected


def test_gb2312_subject_split_and_beyond_its_table() -> None:
    raw = read("gb2312_subject_split_and_beyond.eml")
    mail = parse_mail(raw)
    assert mail.subject == "打印机镕故障"
    assert mail.sender == Person("王小明", "wang@example.cn")
    assert mail.text == "打印机镕不能用了。\n"
    assert head_of(raw).subject == "打印机镕故障"


@pytest.mark.parametrize(
    "encoded",
    [
        "=?utf-8?q?=FF=FE?=",  # bytes no UTF-8 reading has
        "=?shift_jis?B?gQ==?=",  # half a Shift_JIS character
    ],
)
def test_what_cannot_be_decoded_is_replaced_not_kept_raw(encoded: str) -> None:
    subject = subject_of(encoded.encode())
    assert "\ufffd" in subject
    assert "=?" not in subject


# --- undeclared 8-bit headers --------------------------------------------------


def test_raw_shift_jis_headers_read_with_the_bodys_charset() -> None:
    raw = read("raw_shift_jis_headers.eml")
    for mail in (parse_mail(raw), head_of(raw)):
        assert mail.sender == Person("山田太郎", "taro.yamada@example.jp")
        assert mail.subject == "パスワードを忘れました"
    assert parse_mail(raw).text == "ログインできません。①番の端末です。\n"


@pytest.mark.parametrize(
    ("raw_subject", "body_head", "expected"),
    [
        # no body charset, no UTF-8: guessed
        ("打印机无法连接网络".encode("gb18030"), b"", "打印机无法连接网络"),
        ("パスワードを忘れました".encode("cp932"), b"", "パスワードを忘れました"),
        (
            "프린터가 작동하지 않습니다".encode("cp949"),
            b"",
            "프린터가 작동하지 않습니다",
        ),
        ("Не работает принтер".encode("koi8_r"), b"", "Не работает принтер"),
        # the body's charset wins over a guess
        (
            "Не работает".encode("cp1251"),
            b"Content-Type: text/plain; charset=windows-1251\n",
            "Не работает",
        ),
        # raw 7-bit ISO-2022-JP: escapes never shown
        ("すみません".encode("iso2022_jp"), b"", "すみません"),
        # UTF-8 with one broken byte stays UTF-8, the byte replaced
        ("Юникод".encode() + b"\xf1", b"", "Юникод\ufffd"),
    ],
)
def test_undeclared_8bit_subject_is_guessed(
    raw_subject: bytes, body_head: bytes, expected: str
) -> None:
    assert subject_of(raw_subject, body_head) == expected


def test_undeclared_8bit_file_name_is_guessed() -> None:
    raw = (
        b'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nsee file\n"
        b"--b\nContent-Type: application/pdf\nContent-Disposition: attachment; "
        b'filename="' + "請求書.pdf".encode("cp932") + b'"\n\n%PDF\n--b--\n'
    )
    (attachment,) = parse_mail(raw).attachments
    assert attachment.filename == "請求書.pdf"


# --- bodies ------------------------------------------------------------------


def test_iso_2022_jp_body_as_windows_writes_it() -> None:
    mail = parse_mail(read("iso_2022_jp_windows.eml"))
    assert mail.subject == "①番のﾌﾟﾘﾝﾀ"
    assert mail.text == "①番のﾌﾟﾘﾝﾀが動きません。\n"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        # ISO-2022-JP-2 with Korean in it: read right before issue 16 too, kept
        # as the fixture the issue asks for
        (
            "text/plain; charset=iso-2022-jp-2",
            "プリンタ 프린터\n".encode("iso2022_jp_2"),
            "プリンタ 프린터\n",
        ),
        # undeclared 8-bit bodies, guessed as headers are
        (
            "text/plain",
            "パスワードを忘れました。\n".encode("cp932"),
            "パスワードを忘れました。\n",
        ),
        (
            "text/plain",
            "打印机无法连接网络。\n".encode("gb18030"),
            "打印机无法连接网络。\n",
        ),
        # raw ISO-2022-JP declared as US-ASCII
        (
            "text/plain; charset=us-ascii",
            "すみません\n".encode("iso2022_jp"),
            "すみません\n",
        ),
    ],
)
def test_body_charsets(content_type: str, body: bytes, expected: str) -> None:
    head = f"From: a@example.com\nContent-Type: {content_type}\n\n".encode()
    assert parse_mail(head + body).text == expected


# --- the decoders on their own -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "label", "expected"),
    [
        (b"\x1b$B-!\x1b(I6\x1b(B", "iso-2022-jp", "①ｶ"),
        (b"\x1b$B-", "iso-2022-jp", "\ufffd"),  # cut short: replaced, no escape kept
        (b"\x1b$B\x7f\x7f\x1b(B.", "iso-2022-jp", "\ufffd."),  # no JIS pair
        (b"caf\xe9", "x-unknown", "café"),
        ("すみません".encode("cp932"), "iso-2022-jp", "すみません"),  # mislabelled
        (b"caf\xe9", "utf-8", "caf\ufffd"),
    ],
)
def test_decode_declared(data: bytes, label: str, expected: str) -> None:
    assert decode_declared(data, label) == expected


def test_guess_prefers_the_hint_to_the_scorer() -> None:
    data = "Привет".encode("cp1251")
    assert guess_undeclared(data, "windows-1251") == "Привет"
    assert guess_undeclared(b"plain ascii", "shift_jis") == "plain ascii"
