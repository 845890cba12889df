"""Sender identity from Authentication-Results: trusted servers only (RFC 8601)."""

from __future__ import annotations

import pytest

from maild.core.identity import (
    AuthResults,
    MethodResult,
    check_sender,
    is_aligned,
    parse_authentication_results,
)
from maild.domain import AuthResultsBlock

MX = ("mx.example.com",)


def block(*values: str, received_above: int = 0) -> tuple[AuthResultsBlock, ...]:
    """Fields that stood next to each other, as parse groups them."""
    return (AuthResultsBlock(values, received_above),) if values else ()


MARIE = "marie@example.com"

# Gmail receiving mail for a Google Workspace domain: one folded field.
GMAIL_PASS = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@example.com header.s=20230601 header.b=Xo9rDtu1;\r\n"
    "       spf=pass (google.com: domain of marie@example.com designates "
    "209.85.220.41 as permitted sender) smtp.mailfrom=marie@example.com;\r\n"
    "       dmarc=pass (p=NONE sp=QUARANTINE dis=NONE) header.from=example.com"
)
GMAIL_FAIL = (
    "mx.google.com;\r\n"
    "       spf=softfail (google.com: domain of transitioning marie@example.com "
    "does not designate 203.0.113.9 as permitted sender) "
    "smtp.mailfrom=marie@example.com;\r\n"
    "       dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) "
    "header.from=example.com"
)
# Postfix with OpenDKIM, OpenDMARC and policyd-spf: one field per milter.
POSTFIX_DMARC_PASS = (
    "mx.example.com; dmarc=pass (p=reject dis=none) header.from=example.com"
)
POSTFIX_DMARC_NONE = (
    "mx.example.com; dmarc=none (p=none dis=none) header.from=example.com"
)
POSTFIX_DMARC_FAIL = (
    "mx.example.com; dmarc=fail (p=reject dis=reject) header.from=example.com"
)
POSTFIX_DKIM_PASS = (
    "mx.example.com;\n\tdkim=pass (2048-bit key; unprotected) header.d=example.com "
    "header.i=@example.com header.a=rsa-sha256 header.s=mail header.b=abcdEFGH;\n"
    "\tdkim-atps=neutral"
)
POSTFIX_DKIM_FAIL = (
    'mx.example.com; dkim=fail reason="signature verification failed" '
    "(2048-bit key; unprotected) header.d=example.com header.i=@example.com"
)
POSTFIX_SPF = (
    "mx.example.com; spf=pass (sender SPF authorized) smtp.mailfrom=example.com "
    "(client-ip=192.0.2.10; helo=out.example.com; envelope-from=marie@example.com; "
    "receiver=<UNKNOWN>)"
)
# Rspamd: quotes inside a comment, a parenthesis inside a quoted value.
RSPAMD_PASS = (
    "mx.example.com;\r\n\tdkim=pass header.d=example.com header.s=dkim "
    'header.b="Ab12(Cd34";\r\n\tspf=pass (mx.example.com: domain of '
    '"marie@example.com" designates 192.0.2.10 as permitted sender) '
    "smtp.mailfrom=marie@example.com;\r\n\tdmarc=pass (policy=reject) "
    "header.from=example.com"
)
# Exchange Online: no authserv-id at all; it cannot be told from a forged copy.
EXCHANGE_ONLINE = (
    "spf=pass (sender IP is 40.107.22.56) smtp.mailfrom=example.com; dkim=pass "
    "(signature was verified) header.d=example.com;dmarc=pass action=none "
    "header.from=example.com;compauth=pass reason=100"
)
FORGED_OTHER_SERVER = "evil.example.net; dmarc=pass header.from=example.com"
UPPERCASE = "MX.EXAMPLE.COM; DMARC=PASS (P=REJECT) HEADER.FROM=EXAMPLE.COM"
ENCODED_ID = "=?us-ascii?q?mx.example.com?=; dkim=pass header.d=example.com"
QUOTED_ID = '"mx.example.com"; dmarc=pass header.from=example.com'
REAL_NO_DKIM = (
    "mx.example.com; spf=softfail smtp.mailfrom=mallory@evil.test; "
    "dmarc=none header.from=example.com"
)
FORGED_DKIM = "mx.example.com; dkim=pass header.d=example.com"


@pytest.mark.parametrize(
    ("sender", "fields", "trusted", "expected"),
    [
        # Nothing is checked where no server is trusted.
        (MARIE, (), (), True),
        (MARIE, (FORGED_OTHER_SERVER,), (), True),
        # The trusted server's verdict.
        (MARIE, (POSTFIX_DMARC_PASS,), MX, True),
        (MARIE, (POSTFIX_DMARC_FAIL,), MX, False),
        # The authserv-id is compared byte for byte: case counts.
        (MARIE, (UPPERCASE,), MX, False),
        (MARIE, (UPPERCASE,), ("MX.EXAMPLE.COM",), True),
        (MARIE, (RSPAMD_PASS,), MX, True),
        (MARIE, (GMAIL_PASS,), ("mx.google.com",), True),
        (MARIE, (GMAIL_PASS,), ("MX.Google.COM",), False),
        (MARIE, (GMAIL_FAIL,), ("mx.google.com",), False),
        # Several fields from one server: each method looked up on its own.
        (MARIE, (POSTFIX_SPF, POSTFIX_DKIM_PASS, POSTFIX_DMARC_NONE), MX, True),
        (MARIE, (POSTFIX_SPF, POSTFIX_DMARC_PASS, POSTFIX_DKIM_PASS), MX, True),
        (MARIE, (POSTFIX_SPF,), MX, False),  # SPF alone says nothing of From
        (MARIE, (POSTFIX_DKIM_FAIL, POSTFIX_DMARC_NONE), MX, False),
        (MARIE, (POSTFIX_DKIM_PASS, POSTFIX_DMARC_FAIL), MX, False),  # fail is final
        (MARIE, ("mx.example.com 1; none",), MX, False),
        # Results written by any other server are ignored (RFC 8601 section 5).
        (MARIE, (FORGED_OTHER_SERVER,), MX, False),
        (MARIE, (FORGED_OTHER_SERVER, POSTFIX_DMARC_FAIL), MX, False),
        (MARIE, (GMAIL_PASS,), MX, False),
        (MARIE, (EXCHANGE_ONLINE,), MX, False),
        (MARIE, (EXCHANGE_ONLINE,), ("spf=pass",), False),
        (MARIE, (), MX, False),
        # A copy of the trusted id written below the server's own field loses.
        (MARIE, (POSTFIX_DMARC_FAIL, POSTFIX_DMARC_PASS), MX, False),
        (MARIE, (POSTFIX_DKIM_FAIL, POSTFIX_DKIM_PASS), MX, False),
        # Variants of the id the MTA would not strip as its own never count.
        (MARIE, (ENCODED_ID,), MX, False),
        (MARIE, (QUOTED_ID,), MX, False),
        (MARIE, (ENCODED_ID, POSTFIX_DMARC_PASS), MX, True),  # the real one, below
        # dmarc=pass must be for the From domain.
        (MARIE, ("mx.example.com; dmarc=pass header.from=evil.net",), MX, False),
        (MARIE, ("mx.example.com; dmarc=pass",), MX, True),
        (MARIE, ("mx.example.com; dmarc=bestguesspass header.from=x",), MX, False),
        # An unusable From.
        ("", (POSTFIX_DMARC_PASS,), MX, False),
        ("no-at-sign", (POSTFIX_DMARC_PASS,), MX, False),
    ],
)
def test_trusted_verdict(
    sender: str, fields: tuple[str, ...], trusted: tuple[str, ...], expected: bool
) -> None:
    assert check_sender(sender, block(*fields), trusted).is_verified is expected


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        # The MTA's field, its Received, then a forged copy the sender wrote:
        # the copy never fills in the dkim verdict the MTA left out.
        (
            (AuthResultsBlock((REAL_NO_DKIM,)), AuthResultsBlock((FORGED_DKIM,), 1)),
            False,
        ),
        # The forged copy alone, below the MTA's Received: still the first
        # trusted field above a second hop, so the MTA must strip it (README).
        ((AuthResultsBlock((FORGED_DKIM,), 1),), True),
        # Below a second Received: written before the trusted MTA saw the mail.
        ((AuthResultsBlock((FORGED_DKIM,), 2),), False),
        # OpenDMARC and OpenDKIM: two fields of the MTA, one under the other.
        ((AuthResultsBlock((POSTFIX_DMARC_NONE, POSTFIX_DKIM_PASS)),), True),
        # Another server's field between them ends the trusted block.
        (
            (AuthResultsBlock((POSTFIX_DMARC_NONE, FORGED_OTHER_SERVER, FORGED_DKIM)),),
            False,
        ),
        # An untrusted block above the trusted one is skipped.
        (
            (
                AuthResultsBlock((FORGED_OTHER_SERVER,)),
                AuthResultsBlock((POSTFIX_DMARC_PASS,), 1),
            ),
            True,
        ),
    ],
    ids=[
        "forged_lower",
        "alone_below_hop",
        "below_second_hop",
        "two_milters",
        "interrupted",
        "untrusted_above",
    ],
)
def test_only_the_trusted_block_counts(
    blocks: tuple[AuthResultsBlock, ...], expected: bool
) -> None:
    assert check_sender(MARIE, blocks, MX).is_verified is expected


@pytest.mark.parametrize(
    ("sender", "field", "expected"),
    [
        (MARIE, "mx.example.com; dkim=pass header.d=example.com", True),
        (MARIE, "mx.example.com; dkim=pass header.d=mail.example.com", True),
        (
            "marie@paris.example.com",
            "mx.example.com; dkim=pass header.d=example.com",
            True,
        ),
        (MARIE, "mx.example.com; dkim=pass header.i=@example.com", True),
        (MARIE, 'mx.example.com; dkim=pass header.i="marie@example.com"', True),
        (MARIE, "mx.example.com; dkim=pass header.d=notexample.com", False),
        (MARIE, "mx.example.com; dkim=pass header.d=example.com.evil.net", False),
        (MARIE, "mx.example.com; dkim=pass header.d=com", False),
        (MARIE, "mx.example.com; dkim=pass header.s=sel", False),  # no domain
        (MARIE, "mx.example.com; dkim=neutral header.d=example.com", False),
        (
            MARIE,
            "mx.example.com; dkim=pass header.d=bulk.net; "
            "dkim=pass header.d=example.com",
            True,
        ),
        (MARIE, "mx.example.com; auth=pass smtp.auth=marie@example.com", True),
        (MARIE, "mx.example.com; auth=pass smtp.auth=marie", False),
        (MARIE, "mx.example.com; auth=fail smtp.auth=marie@example.com", False),
    ],
)
def test_dkim_alignment_and_smtp_auth(sender: str, field: str, expected: bool) -> None:
    assert check_sender(sender, block(field), MX).is_verified is expected


def test_the_check_says_why() -> None:
    unchecked = check_sender(MARIE, (), ())
    assert (unchecked.is_verified, unchecked.is_checked) == (True, False)
    refused = check_sender(MARIE, block(POSTFIX_SPF), MX)
    assert (refused.is_verified, refused.is_checked) == (False, True)
    assert refused.detail == "no aligned pass (spf=pass)"
    assert check_sender(MARIE, block("mx.example.com; none"), MX).detail == (
        "no aligned pass (no results)"
    )
    assert check_sender(MARIE, block(FORGED_OTHER_SERVER), MX).detail == (
        "no Authentication-Results from a trusted server"
    )
    assert check_sender(MARIE, block(POSTFIX_DMARC_FAIL), MX).detail == "dmarc=fail"
    assert check_sender(MARIE, block(POSTFIX_DKIM_PASS), MX).detail == (
        "dkim=pass header.d=example.com"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "mx.example.com; dkim=pass header.d=example.com header.s=s1",
            AuthResults(
                "mx.example.com",
                (
                    MethodResult(
                        "dkim",
                        "pass",
                        (("header.d", "example.com"), ("header.s", "s1")),
                    ),
                ),
            ),
        ),
        (
            # Version, folding, comments (nested, with an escaped parenthesis),
            # spaces around "=" and ".", a quoted authserv-id (kept quoted: it
            # is not the trusted id).
            '"mx.example.com" 1 ;\r\n dkim/1 = pass (good (very \\) good)) '
            "header . d = example.com",
            AuthResults(
                '"mx.example.com"',
                (MethodResult("dkim", "pass", (("header.d", "example.com"),)),),
            ),
        ),
        (
            # A semicolon and an escaped quote inside a quoted value; reason= dropped.
            'mx.example.com; spf=fail reason="a; b \\" c" smtp.mailfrom=x@y.example',
            AuthResults(
                "mx.example.com",
                (MethodResult("spf", "fail", (("smtp.mailfrom", "x@y.example"),)),),
            ),
        ),
        (
            # A stray closing parenthesis outside any comment is kept as text.
            "mx.example.com; dmarc=pass) header.from=example.com",
            AuthResults(
                "mx.example.com",
                (MethodResult("dmarc", "pass)", (("header.from", "example.com"),)),),
            ),
        ),
        ("mx.example.com; none", AuthResults("mx.example.com", ())),
        ("", AuthResults("", ())),
        (
            "dkim=pass header.d=example.com",
            AuthResults(
                "", (MethodResult("dkim", "pass", (("header.d", "example.com"),)),)
            ),
        ),
    ],
)
def test_parse_authentication_results(value: str, expected: AuthResults) -> None:
    assert parse_authentication_results(value) == expected


def test_properties_are_looked_up_by_name() -> None:
    result = MethodResult("dkim", "pass", (("header.d", "example.com"),))
    assert result.prop("header.d") == "example.com"
    assert result.prop("header.i") == ""


@pytest.mark.parametrize(
    ("signer", "domain", "expected"),
    [
        ("example.com", "example.com", True),
        ("Example.COM.", "example.com", True),
        ("example.com", "it.example.com", True),
        ("it.example.com", "example.com", True),
        ("example.com", "badexample.com", False),
        ("org", "example.org", False),
        ("", "example.com", False),
    ],
)
def test_relaxed_alignment(signer: str, domain: str, expected: bool) -> None:
    assert is_aligned(signer, domain) is expected
