"""Addresses: which are plain mailboxes, in the accepted domains, fit to mail.

Used by classification (who may open a ticket), the configuration (staff
addresses), the queue (the safety net under every notification), the message
builder and the command line's `staff add`. Pure, no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

log = logging.getLogger(__name__)

# Dot-atom without "%" and "!": a relay may read them as routes (the percent
# hack, bang paths) and deliver outside the domain after the "@".
_LOCAL: Final = re.compile(
    r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9#$&'*+/=?^_`{|}~-]+)*"
)
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_MAX_ADDRESS: Final = 254
_MAX_LOCAL: Final = 64
# RFC 5322 dot-atom text (and RFC 6531's UTF-8) without "%" and "!", which
# relays read as routes; no quotes, brackets, ":" or ",".
_PLAIN_LOCAL = re.compile(r"[\w#$&'*+/=?^`{|}~.-]+")
_PLAIN_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)*")


def normalize_address(value: str) -> str | None:
    """Return value as a plain ASCII addr-spec, or None when it is not one.

    Local parts with "%" or "!" are not plain: they are refused here, so the
    safety net under every notification drops them and the CLI refuses them.
    """
    local, at, domain = value.strip().rpartition("@")
    if not at or len(local) > _MAX_LOCAL or not _LOCAL.fullmatch(local):
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    address = f"{local}@{domain}"
    if len(address) > _MAX_ADDRESS or not _DOMAIN.fullmatch(domain):
        return None
    return address


def valid_recipients(addresses: Iterable[str]) -> tuple[str, ...]:
    """Keep the valid addresses, once each (case ignored), in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for raw in addresses:
        address = normalize_address(raw)
        if address is None:
            log.warning("recipient %r is not a valid address; skipped", raw)
        elif address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    return tuple(kept)


def is_plain_mailbox(address: str) -> bool:
    """Tell whether an address is one plain mailbox, routed by its domain alone.

    A local part with `%` or `!` (the percent hack, bang paths), a quoted
    local part, a source route or a second `@` can make a relay such as
    Postfix (allow_percent_hack, swap_bangpath) deliver outside the domain
    the address seems to name: such an address is never mailed, never a
    watcher, beneficiary or staff member, and never opens a ticket.
    """
    local, at, domain = address.rpartition("@")
    return bool(
        at
        and _PLAIN_LOCAL.fullmatch(local)
        and _PLAIN_DOMAIN.fullmatch(domain)
        and ".." not in local
    )


def is_accepted(address: str, accepted_domains: tuple[str, ...]) -> bool:
    """Tell whether address is a plain mailbox of one of the accepted domains."""
    if not is_plain_mailbox(address):
        return False
    domain = address.lower().rpartition("@")[2]
    for pattern in accepted_domains:
        if pattern == "*" or domain == pattern:
            return True
        if pattern.startswith("*.") and domain.endswith(pattern[1:]):
            return True
    return False
