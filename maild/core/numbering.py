"""Ticket numbers: I/S + yymmdd in the calendar's zone + _ + 4 digits. Pure."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from maild.domain import TicketType

_NUMBER = r"[IS]\d{6}_\d{4,}"


def ticket_day(now: datetime, timezone: str) -> str:
    """Return the yymmdd of now in the calendar's time zone."""
    return now.astimezone(ZoneInfo(timezone)).strftime("%y%m%d")


def counter_name(ticket_type: TicketType, day: str) -> str:
    """Name the counter row that numbers one type's tickets of one day."""
    return f"{ticket_type.letter}{day}"


def subject_tag(tag: str, number: str) -> str:
    """Return the `[TAG NUMBER]` that every mail about a ticket carries."""
    return f"[{tag} {number}]"


def number_in_subject(subject: str, tag: str) -> str | None:
    """Find this installation's `[TAG NUMBER]` in a subject, if any."""
    match = re.search(rf"\[\s*{re.escape(tag)}\s+({_NUMBER})\s*\]", subject, re.I)
    return match.group(1).upper() if match else None
