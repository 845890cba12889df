"""core/addresses.py: which addresses maild may write in RCPT TO. Pure."""

from __future__ import annotations

import pytest

from maild.core.addresses import normalize_address, valid_recipients


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("marie@example.com", "marie@example.com"),
        (" marie@example.com ", "marie@example.com"),
        ("marie@exemple-été.fr", "marie@xn--exemple-t-i4ab.fr"),  # IDNA
        ("marie@" + "x" * 64 + ".fr", None),  # a label IDNA cannot encode
        ("evil%evil.test@example.com", None),  # the percent hack
        ("evil.test!evil@example.com", None),  # a bang path
        ("no-at-sign", None),
        ("marie@localhost", None),  # no dot: not a mail domain
    ],
)
def test_normalize_address(raw: str, expected: str | None) -> None:
    assert normalize_address(raw) == expected


def test_valid_recipients_keep_each_address_once_in_order() -> None:
    assert valid_recipients(
        ("b@example.com", "bad", "A@example.com", "B@EXAMPLE.com")
    ) == ("b@example.com", "A@example.com")
