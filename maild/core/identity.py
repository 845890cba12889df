"""Sender identity: did the trusted MTA vouch for the From address? Pure, no I/O.

Reads the `Authentication-Results` header fields (RFC 8601) a mail carries.
Only fields whose authserv-id (the first token of the value) is one of the
configured trusted servers count; any other is ignored, as RFC 8601 §5 says,
since anyone can write such a header into a mail. The From address is
verified when the trusted server reports, for it:

- `dmarc=pass` (with `header.from` the From domain when it is given), or
- where no DMARC verdict settles it (`none`, `temperror`, ...), a `dkim=pass`
  whose `header.d` (or the domain of `header.i`) aligns with the From domain:
  the same domain, or one a subdomain of the other (DMARC's relaxed
  alignment), or
- `auth=pass` with `smtp.auth` the From address itself (the sender logged in
  to the trusted server to submit it).

`dmarc=fail` is final.

Which fields count (RFC 8601 section 5; the MTA must remove the copies of
its own fields that inbound mail carries, see README "Security"):
- the authserv-id is the first token of the value, compared byte for byte
  with a trusted one: no RFC 2047 decoding, no unquoting, no case folding, so
  a variant the MTA does not recognise as its own never counts either;
- only the trusted block counts: the first field with a trusted id that
  stands above the second Received field (the trusted MTA writes its fields
  above or right below its own Received), and the trusted fields directly
  below it. A field further down, even with the trusted id, was written
  before the mail reached the trusted MTA, by whoever sent it;
- a method the block does not report is not verified: a lower field never
  fills in what the trusted server left out. Within the block, for each
  method the topmost field that reports it decides.
A field without an authserv-id (Exchange Online writes `spf=pass ...` first)
cannot be attributed to a server and is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from maild.domain import AuthResultsBlock

_PAIR: Final = re.compile(
    r"""([A-Za-z0-9_-]+(?:/[0-9]+)?(?:\s*\.\s*[A-Za-z0-9_-]+)?)  # key
        \s*=\s*
        ("(?:[^"\\]|\\.)*"|[^\s;"]+)                            # value""",
    re.VERBOSE,
)
_SPACE: Final = re.compile(r"\s+")
_DKIM_DOMAIN: Final = ("header.d", "header.i")


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One `method=result` of an Authentication-Results field, with its properties."""

    method: str  # lower-cased, version dropped: dkim, dmarc, spf, auth, ...
    result: str  # lower-cased: pass, fail, none, ...
    properties: tuple[tuple[str, str], ...] = ()  # (ptype.property, value)

    def prop(self, name: str) -> str:
        """Return the value of a property such as header.d, or ""."""
        return next((v for k, v in self.properties if k == name), "")


@dataclass(frozen=True, slots=True)
class AuthResults:
    """One Authentication-Results field, read."""

    authserv_id: str  # as written, compared byte for byte; "" when none is named
    results: tuple[MethodResult, ...]


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """Whether a mail's sender is verified, and why, for the log and the event."""

    is_verified: bool
    is_checked: bool  # False: no trusted server is configured, nothing was checked
    detail: str


def check_sender(
    from_address: str,
    authentication_results: tuple[AuthResultsBlock, ...],
    trusted_ids: tuple[str, ...],
) -> IdentityCheck:
    """Tell whether a trusted server's Authentication-Results vouch for From."""
    if not trusted_ids:
        return _unchecked("no trusted authserv-id configured")
    _, at, domain = from_address.lower().rpartition("@")
    if not at or not domain:
        return _refused("no From address")
    fields = trusted_block(authentication_results, frozenset(trusted_ids))
    if not fields:
        return _refused("no Authentication-Results from a trusted server")
    dmarc = _topmost(fields, "dmarc")
    for result in dmarc:
        header_from = result.prop("header.from").lower()
        if result.result == "pass" and header_from in ("", domain):
            return _vouched("dmarc=pass")
    if any(r.result == "fail" for r in dmarc):
        return _refused("dmarc=fail")
    for result in _topmost(fields, "dkim"):
        signer = _dkim_domain(result)
        if result.result == "pass" and is_aligned(signer, domain):
            return _vouched(f"dkim=pass header.d={signer}")
    for result in _topmost(fields, "auth"):
        if result.result == "pass" and result.prop("smtp.auth").lower() == (
            from_address.lower()
        ):
            return _vouched("auth=pass")
    seen = ", ".join(f"{r.method}={r.result}" for f in fields for r in f.results)
    return _refused(f"no aligned pass ({seen or 'no results'})")


def trusted_block(
    blocks: tuple[AuthResultsBlock, ...], trusted_ids: frozenset[str]
) -> tuple[AuthResults, ...]:
    """The fields the trusted server wrote: the first trusted field above the
    second Received, and the trusted fields directly below it."""
    for block in blocks:
        if block.received_above > 1:
            break  # below a second hop: written before the trusted MTA saw it
        parsed = [parse_authentication_results(v) for v in block.values]
        start = next(
            (i for i, p in enumerate(parsed) if p.authserv_id in trusted_ids), None
        )
        if start is None:
            continue
        kept: list[AuthResults] = []
        for field in parsed[start:]:
            if field.authserv_id not in trusted_ids:
                break
            kept.append(field)
        return tuple(kept)
    return ()


def _unchecked(detail: str) -> IdentityCheck:
    return IdentityCheck(is_verified=True, is_checked=False, detail=detail)


def _vouched(detail: str) -> IdentityCheck:
    return IdentityCheck(is_verified=True, is_checked=True, detail=detail)


def _refused(detail: str) -> IdentityCheck:
    return IdentityCheck(is_verified=False, is_checked=True, detail=detail)


def parse_authentication_results(value: str) -> AuthResults:
    """Read one Authentication-Results value: its authserv-id and results."""
    segments = _split(_without_comments(value))
    head, rest = segments[0].strip(), segments[1:]
    if "=" in head:  # no authserv-id: the field starts with a result
        authserv_id, rest = "", segments
    else:
        words = head.split()
        authserv_id = words[0] if words else ""  # a quoted id stays quoted
    results = tuple(r for r in map(_method_result, rest) if r is not None)
    return AuthResults(authserv_id, results)


def is_aligned(signer: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    signer, from_domain = signer.lower().strip("."), from_domain.lower().strip(".")
    if "." not in signer:  # a bare top-level domain never aligns
        return False
    return (
        signer == from_domain
        or from_domain.endswith("." + signer)
        or signer.endswith("." + from_domain)
    )


def _topmost(fields: Iterable[AuthResults], method: str) -> tuple[MethodResult, ...]:
    """The results for method in the first trusted field that reports it."""
    for field in fields:
        found = tuple(r for r in field.results if r.method == method)
        if found:
            return found
    return ()


def _dkim_domain(result: MethodResult) -> str:
    for name in _DKIM_DOMAIN:
        value = result.prop(name)
        if value:
            return value.rpartition("@")[2]
    return ""


def _method_result(segment: str) -> MethodResult | None:
    pairs = [
        (_SPACE.sub("", key).lower(), _unquote(value))
        for key, value in _PAIR.findall(segment)
    ]
    if not pairs:
        return None  # "none", or text that is not a result
    (method, result), properties = pairs[0], pairs[1:]
    return MethodResult(
        method.partition("/")[0],
        result.lower(),
        tuple((k, v) for k, v in properties if k != "reason"),
    )


def _without_comments(value: str) -> str:
    """Drop (comments), nested or not, but not parentheses in quoted strings."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
        elif quoted:
            out.append(char)
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif depth == 0:
            out.append(char)
            quoted = char == '"'
    return "".join(out)


def _split(value: str) -> list[str]:
    """Split on the semicolons that are not inside a quoted string."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) > 1 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
