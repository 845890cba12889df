"""Keywords quoted below a reply in another language never count (issue 16)."""

from __future__ import annotations

import pytest

from maild.core.commands import parse_commands
from maild.core.quotes import new_text
from tests.unit.test_quotes import LANGUAGE_SAMPLES

QUOTED_KEYWORDS = "\nCLAIM\nRESOLVED fixed\nACCEPT\nREFUSE no\nRATE 1\nANNULER\n"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(r, e) for _, r, e in LANGUAGE_SAMPLES],
    ids=[c for c, _, _ in LANGUAGE_SAMPLES],
)
def test_keywords_below_the_quote_start_do_nothing(reply: str, expected: str) -> None:
    # The quoted original goes on, unquoted, below the attribution, header
    # block or phone tag.
    with_keywords = reply.rstrip("\n") + QUOTED_KEYWORDS
    assert parse_commands(new_text(with_keywords)) == parse_commands(expected)
