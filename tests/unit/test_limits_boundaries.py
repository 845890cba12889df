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


@pytest.mark.parametrize(
    ("raw", "counted"),
    [
        # a delimiter on the very first line counts like any other
        (b"--b\nx\n--b\ny\n--b--\n" + b"Content-Type: multipart/mixed; boundary=b", 2),
        # only a whole word declares: xboundary= does not
        (b"Content-Type: text/plain; xboundary=b\n\n--b\n--b\n", 0),
        # the name is case-insensitive; a closing delimiter is not a part
        (b"Content-Type: multipart/mixed; BOUNDARY = b\n\n--b \n--b\r\n--b--\n", 2),
        # "boundary=" inside a declared value declares nothing more
        (b'Content-Type: multipart/mixed; boundary="boundary=c"\n\n--c\n--c\n', 0),
        # a longer line that starts with the boundary is not a delimiter
        (b"Content-Type: multipart/mixed; boundary=b\n\n--bb\n--b\n", 1),
    ],
)
def test_delimiters_are_counted_only_for_declared_boundaries(
    raw: bytes, counted: int
) -> None:
    check_delimiters(raw, ParseLimits(max_parts=counted))
    if counted:
        with pytest.raises(TooManyParts):
            check_delimiters(raw, ParseLimits(max_parts=counted - 1))
