"""Field step: a new ticket's body -> TicketFields (`Key: value` lines). Pure, no I/O.

The field block is the run of `Key: value` lines at the top of the body
(leading blank lines skipped). Keys are French or English, accents, case and
a space before the colon ignored. The first line that is not a known key line
(a blank line, prose, an unknown key) ends the block; it and everything after
it is the description. A key given twice counts once: the last one wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from maild.domain import Person, TicketFields, TicketType, Urgency


class _Key(StrEnum):
    APPLICATION = "application"
    URGENCY = "urgency"
    BENEFICIARY = "beneficiary"
    PHONE = "phone"
    TYPE = "type"


_KEYS: Final[Mapping[str, _Key]] = {
    "application": _Key.APPLICATION,
    "urgence": _Key.URGENCY,
    "urgency": _Key.URGENCY,
    "beneficiaire": _Key.BENEFICIARY,
    "beneficiary": _Key.BENEFICIARY,
    "telephone": _Key.PHONE,
    "tel": _Key.PHONE,
    "phone": _Key.PHONE,
    "type": _Key.TYPE,
}
_URGENCIES: Final[Mapping[str, Urgency]] = {
    "basse": Urgency.LOW,
    "low": Urgency.LOW,
    "moyenne": Urgency.MEDIUM,
    "medium": Urgency.MEDIUM,
    "haute": Urgency.HIGH,
    "high": Urgency.HIGH,
}
_TYPES: Final[Mapping[str, TicketType]] = {
    "incident": TicketType.INCIDENT,
    "demande": TicketType.REQUEST,
    "request": TicketType.REQUEST,
}
MAX_APPLICATION = 255  # the store's column widths
MAX_PHONE = 64
MAX_NAME = 255
MAX_ADDRESS = 320
_ADDRESS = re.compile(r"<?([^\s<>@,;]+@[^\s<>@,;]+\.[^\s<>@,;]+)>?")


def extract_fields(text: str) -> TicketFields:
    """Read the `Key: value` lines at the top of a body; the rest is description."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    values: dict[_Key, str] = {}
    end = start
    while end < len(lines) and (field := _key_line(lines[end])) is not None:
        values[field[0]] = field[1]
        end += 1
    return TicketFields(
        application=values.get(_Key.APPLICATION, "")[:MAX_APPLICATION],
        urgency=_URGENCIES.get(_first_word(values.get(_Key.URGENCY, ""))),
        beneficiary=_person(values.get(_Key.BENEFICIARY, "")),
        phone=values.get(_Key.PHONE, "")[:MAX_PHONE],
        ticket_type=_TYPES.get(_first_word(values.get(_Key.TYPE, ""))),
        description=_without_blank_edges(lines[end:]),
    )


def _without_blank_edges(lines: list[str]) -> str:
    first, last = 0, len(lines)
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    return "\n".join(lines[first:last])


def _fold(text: str) -> str:
    """Lower-case and strip accents, so `Bénéficiaire` reads as `beneficiaire`."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def _key_line(line: str) -> tuple[_Key, str] | None:
    name, colon, value = line.partition(":")
    key = _KEYS.get(_fold(name))
    if not colon or key is None:
        return None
    return key, value.strip()


def _first_word(value: str) -> str:
    words = _fold(value).split()
    return words[0].strip(".,;!") if words else ""


def _person(value: str) -> Person | None:
    """Read `Name <address>`, `Name address` or a bare address."""
    found = _ADDRESS.search(value)
    if found is None:
        return None
    name = (value[: found.start()] + " " + value[found.end() :]).strip(" \t\"',;-")
    address = found.group(1).lower()
    if len(address) > MAX_ADDRESS:
        return None
    return Person(" ".join(name.split())[:MAX_NAME], address)
