"""Erasure: a person's pseudonym and the rewriting of texts that name them. Pure.

The pseudonym is an HMAC of the lower-cased address under the desk's own
secret: the same address always gives the same pseudonym on this desk (its
tickets stay countable per person), and nobody without the secret can go
back from it to the address, nor test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_SEPARATORS = r"[\s.\-/()]*"  # what people write between the digits of a phone
_MIN_NAME = 3  # shorter names ("Jo") would erase every word that contains them
_MIN_PHONE_DIGITS = 6
# What may stand right before or after an address in a header: not part of it.
_ADDRESS_CHAR = rb"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]"


@dataclass(frozen=True, slots=True)
class Pseudonym:
    address: str  # anon-<hmac>@invalid (RFC 2606: never delivered)
    name: str  # anon-<hmac>, for names and phone numbers


def pseudonym(address: str, secret: bytes) -> Pseudonym:
    """Return the stable pseudonym of an address on the desk holding secret."""
    digest = hmac.new(secret, address.strip().lower().encode(), hashlib.sha256)
    tag = f"anon-{digest.hexdigest()[:16]}"
    return Pseudonym(address=f"{tag}@invalid", name=tag)


def rewriter(
    address: str,
    names: Iterable[str],
    phones: Iterable[str],
    alias: Pseudonym,
) -> Callable[[str], str]:
    """Return a function that replaces the address, names and phones in a text."""
    patterns: list[tuple[re.Pattern[str], str]] = [
        (re.compile(re.escape(address.strip()), re.IGNORECASE), alias.address)
    ]
    for name in sorted({n.strip() for n in names}, key=len, reverse=True):
        if len(name) >= _MIN_NAME:
            words = [re.escape(w) for w in name.split()]
            patterns.append((re.compile(r"\s+".join(words), re.IGNORECASE), alias.name))
    for phone in {p.strip() for p in phones}:
        digits = re.sub(r"\D", "", phone)
        if len(digits) >= _MIN_PHONE_DIGITS:
            spaced = _SEPARATORS.join(re.escape(d) for d in digits)
            patterns.append(
                (re.compile(r"(?<!\d)\+?" + spaced + r"(?!\d)"), alias.name)
            )

    def rewrite(text: str) -> str:
        for pattern, replacement in patterns:
            text = pattern.sub(replacement, text)
        return text

    return rewrite


def headers_name(raw: bytes, address: str) -> bool:
    """Whether the header block of a raw mail (its start is enough) names the
    address: in From, To, Cc, Reply-To or any other header, any case, whole
    (not inside a longer address). The body is not looked at."""
    end = min(
        (i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0),
        default=len(raw),
    )
    wanted = re.escape(address.strip().lower().encode())
    pattern = (
        rb"(?<!" + _ADDRESS_CHAR + rb")" + wanted + rb"(?!" + _ADDRESS_CHAR + rb")"
    )
    return re.search(pattern, raw[:end].lower()) is not None
