"""Fuzzing: hostile MIME built by Hypothesis, through parse and classify.

`hostile_mail()` builds mail the way broken and malicious senders do: nesting,
missing, wrong and reused boundaries, every transfer encoding (and broken
ones), unknown charsets, encoded words, folded and raw 8-bit headers, huge
and empty parts, mixed line endings. The property: parsing ends in an
InboundMail or a MailRejected (never another exception), within the budget,
with one-line values, and classification always says something.

CI runs a short, derandomized run; `-m slow` runs the long one.
tests/adapters/test_fuzz_handle.py takes the same mail through HandleMail.handle.
"""

from __future__ import annotations

import base64
import re
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from maild.core.classify import classify
from maild.core.limits import ParseLimits
from maild.core.parse import head_of, parse_mail
from maild.errors import MailRejected
from tests.support.factories import POLICY

LIMITS = ParseLimits(
    max_attachment_bytes=200_000,
    max_parts=60,
    max_mime_depth=8,
    max_header_bytes=20_000,
)
BUDGET_SECONDS = 2.0
BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029\x00]")
CI = settings(
    max_examples=200,
    deadline=None,  # the budget is asserted below, on the parse alone
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
LONG = settings(CI, max_examples=3000, derandomize=False)

# --- the strategy -------------------------------------------------------------

SEPARATORS = st.sampled_from([b"\n", b"\n", b"\r\n", b"\r\n", b"\r"])
TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=? ", min_size=0, max_size=70
)
CHARSETS = st.sampled_from(
    [
        "utf-8",
        "iso-8859-1",
        "windows-1252",
        "iso-2022-jp",
        "gb2312",
        "us-ascii",
        "x-unknown",
        "",
        "utf\\x00-8",
        "utf-7",
        "unicode_escape",
        "base64",
    ]
)
ENCODINGS = st.sampled_from(
    ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
)
TYPES = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "application/octet-stream",
        "application/ms-tnef",
        "image/png",
        "message/delivery-status",
        "text/rfc822-headers",
        "x/" + "y" * 300,
        "",
        "garbage",
    ]
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "<div>" * 500,
            "=?utf-8?b?QUJDR?=",
            "begin 644 x\nM\nend\n",
            "Application: X\rBcc: a@b\n",
            "\u2028\u0085\x0b",
        ]
    ),
)


@st.composite
def body_bytes(draw: st.DrawFn) -> bytes:
    """A part's body: text in some charset, random bytes, or something big."""
    kind = draw(st.sampled_from(["text", "bytes", "base64ish", "big", "empty"]))
    if kind == "text":
        return draw(TEXT).encode(draw(st.sampled_from(["utf-8", "latin-1"])), "replace")
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "base64ish":
        return draw(
            st.text("ABCDEFGHIJKLMNOPabcdef0123456789+/=!\n", max_size=300)
        ).encode()
    if kind == "big":
        return draw(st.sampled_from([b"x", b"\n", b"\r", b"--", b"=\n"])) * draw(
            st.integers(1, 150_000)
        )
    return b""


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    """A header value: plain, encoded words (good or broken), raw 8-bit, folded."""
    text = draw(TEXT)
    style = draw(st.sampled_from(["plain", "b", "q", "raw", "broken", "folded"]))
    if style == "b":
        return b"=?utf-8?b?" + base64.b64encode(text.encode()) + b"?="
    if style == "q":
        return (
            b"=?"
            + draw(CHARSETS).encode()
            + b"?q?"
            + text.encode("ascii", "replace")
            + b"?="
        )
    if style == "raw":
        return text.encode("utf-8", "replace")
    if style == "broken":
        return b"=?utf-8?" + text.encode("utf-8", "replace")
    if style == "folded":
        words = text.encode("utf-8", "replace").split(b" ")
        return b"\n ".join(words)
    return text.encode("ascii", "replace")


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(TYPES)
    headers = [b"Content-Type: " + ctype.encode()]
    if draw(st.booleans()):
        headers[0] += b"; charset=" + draw(CHARSETS).encode()
    if draw(st.booleans()):
        headers.append(b"Content-Transfer-Encoding: " + draw(ENCODINGS).encode())
    if draw(st.booleans()):
        name = draw(header_value())
        if draw(st.booleans()):
            headers.append(b'Content-Disposition: attachment; filename="' + name + b'"')
        else:
            headers.append(b"Content-Disposition: attachment; filename*=utf-8''" + name)
    return b"\n".join(headers) + b"\n\n" + draw(body_bytes())


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        parts = draw(st.lists(children, max_size=6))
        declared = draw(TOKEN)
        used = declared if draw(st.integers(0, 4)) else draw(TOKEN)  # mostly right
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report"]))
        head = b"Content-Type: multipart/" + subtype.encode()
        if draw(st.integers(0, 5)):
            head += b'; boundary="' + declared.encode() + b'"'
        delimiter = b"\n--" + used.encode() + b"\n"
        closing = b"\n--" + used.encode() + b"--\n" if draw(st.integers(0, 3)) else b""
        preamble = draw(st.sampled_from([b"", b"This is a MIME message.\n"]))
        return head + b"\n\n" + preamble + delimiter + delimiter.join(parts) + closing

    return build()


def attached_message(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return children.map(
        lambda inner: b"Content-Type: message/rfc822\n\nFrom: x@example.org\n" + inner
    )


MIME = st.recursive(
    leaf(),
    lambda children: st.one_of(multipart(children), attached_message(children)),
    max_leaves=12,
)
SENDERS = st.sampled_from(
    [
        b"Marie <marie@example.com>",
        b"marie@example.com",
        b"=?utf-8?q?Ren=C3=A9e?= <renee@example.com>",
        b"eve@elsewhere.org",
        b"=?utf-8?q?Eve=0D=0ABcc:_x@example.org?= <eve@example.com>",
        b"",
        b"<>",
        b"MAILER-DAEMON@example.com",
        b"\xff\xfe@\x00",
    ]
)


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    """A whole mail: top headers, a MIME tree, and line endings of any kind."""
    headers = [
        b"From: " + draw(SENDERS),
        b"To: helpdesk@example.com",
        b"Subject: " + draw(header_value()),
        b"Message-ID: <" + draw(TOKEN).encode() + b"@client.example.com>",
    ]
    extras = [
        b"Auto-Submitted: auto-replied",
        b"In-Reply-To: <" + draw(TOKEN).encode() + b">",
        b"Cc: " + draw(header_value()) + b" <watcher@example.com>",
        b"X-Pad: " + b"x" * draw(st.integers(0, 30_000)),
        b"MIME-Version: 1.0",
    ]
    headers += draw(st.lists(st.sampled_from(extras), max_size=3))
    raw = b"\n".join(headers) + b"\n" + draw(MIME)
    return raw.replace(b"\n", draw(SEPARATORS))


# --- the property -------------------------------------------------------------


def check_parse_and_classify(raw: bytes) -> None:
    started = time.monotonic()
    try:
        mail = parse_mail(raw, "sender@example.com", ("helpdesk@example.com",), LIMITS)
    except MailRejected as exc:
        refused = exc
    else:
        refused = None
    assert time.monotonic() - started < BUDGET_SECONDS
    if refused is not None:
        event(f"refused: {refused.reason}")
        head = head_of(raw)  # what the refusal notice reads: never raises
        assert not BREAKS.search(head.subject)
        return
    for value in (
        mail.subject,
        mail.sender.name,
        *(a.filename for a in mail.attachments),
    ):
        assert not BREAKS.search(value)
    event(type(classify(mail, POLICY, NoTickets())).__name__)


class NoTickets:
    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return None

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        return None

    def staff(self) -> dict[str, str]:
        return {}


@CI
@given(hostile_mail())
def test_hostile_mime_never_escapes_parse_and_classify(raw: bytes) -> None:
    check_parse_and_classify(raw)


@pytest.mark.slow
@LONG
@given(hostile_mail())
def test_hostile_mime_long_run(raw: bytes) -> None:
    check_parse_and_classify(raw)
