"""Keywords in the quoted part of a reply never count, for every client style."""

from __future__ import annotations

import pytest

from maild.core.commands import parse_commands
from maild.core.quotes import new_text
from tests.unit.test_quotes import OWN_SAMPLES

QUOTED_KEYWORDS = "\nCLAIM\nRESOLVED fixed\nACCEPT\nREFUSE no\nRATE 1\nANNULER\n"
TOP_POSTED = [
    (client, reply, expected)
    for client, reply, expected in OWN_SAMPLES
    if reply.replace("\r\n", "\n")
    .replace("\r", "\n")
    .startswith(expected.splitlines()[0])
]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(r, e) for _, r, e in TOP_POSTED],
    ids=[c for c, _, _ in TOP_POSTED],
)
def test_keywords_in_the_quote_do_nothing(reply: str, expected: str) -> None:
    body = reply.rstrip("\r\n")
    last = body.replace("\r", "\n").splitlines()[-1]
    # Continue the quote in the client's own style: ">"-quoted or plain below
    # an attribution or separator.
    keywords = (
        QUOTED_KEYWORDS.replace("\n", "\n> ")
        if last.startswith(">")
        else (QUOTED_KEYWORDS)
    )
    with_keywords = body + keywords.rstrip("> ")
    assert parse_commands(new_text(with_keywords)) == parse_commands(expected)


def test_most_client_styles_are_checked() -> None:
    assert len(TOP_POSTED) >= 30
