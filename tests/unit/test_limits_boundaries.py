"""The delimiter pre-count stops collecting boundaries after a bound."""

from __future__ import annotations

import pytest

from maild.core.limits import ParseLimits, TooManyParts, check_delimiters


def test_a_flood_of_boundary_declarations_is_bounded() -> None:
    declarations = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n' % n for n in range(10_050)
    )
    delimiters = b"--b1\n" * 600
    with pytest.raises(TooManyParts):
        check_delimiters(declarations + delimiters, ParseLimits(max_parts=500))
