"""Retention: how long raw mail is kept, and what is due for removal. Pure.

A closed ticket keeps its facts (number, type, dates, state, SLA, rating,
the kinds of its events) for good; its raw mails and attachments go
`mail_days_after_close` days after closure. A quarantined or ignored mail
keeps its bytes `quarantine_days` days after it was handled. Nothing of an
open ticket is ever due: a ticket reopened (REFUSE) was never closed long.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from maild.domain import MailState, TicketState

SHORT_LIVED = frozenset({MailState.QUARANTINED, MailState.IGNORED})


@dataclass(frozen=True, slots=True)
class Policy:
    """[retention] as the core needs it (config.Retention.policy)."""

    mail_days_after_close: int
    quarantine_days: int


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What closed or handled before these moments is due for removal."""

    tickets_closed_before: datetime
    mails_handled_before: datetime


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed (or, dry, would remove): `maild purge --json`."""

    mails: int = 0
    attachments: int = 0
    blobs: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.mails + other.mails,
            self.attachments + other.attachments,
            self.blobs + other.blobs,
        )


@dataclass(frozen=True, slots=True)
class Dropped:
    """What one transaction dropped: raw mails, attachments, the blobs they named,
    and the Message-IDs of the sent mail whose bytes went (their copies kept
    as .eml files without a relay go too)."""

    mails: int = 0
    attachments: int = 0
    blobs: frozenset[str] = frozenset()
    sent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BlobName:
    """A row that names a blob: a mail's kept bytes (mail_id set) or an
    attachment of a ticket (mail_id None)."""

    sha256: str
    ticket_id: int | None
    mail_id: int | None


def freed_blobs(
    shas: Iterable[str],
    names: Iterable[BlobName],
    due_tickets: frozenset[int],
    due_mails: frozenset[int],
) -> frozenset[str]:
    """The blobs among shas that a purge of these tickets and mails frees: those
    only their rows name (a blob shared with a live ticket stays)."""
    still_named = {
        name.sha256
        for name in names
        if name.ticket_id not in due_tickets
        and (name.mail_id is None or name.mail_id not in due_mails)
    }
    return frozenset(shas) - still_named


def cutoffs(policy: Policy, now: datetime) -> Cutoffs:
    """Return the moments before which closure or handling makes data due."""
    return Cutoffs(
        tickets_closed_before=now - timedelta(days=policy.mail_days_after_close),
        mails_handled_before=now - timedelta(days=policy.quarantine_days),
    )


def is_ticket_due(
    state: TicketState, closed_at: datetime | None, policy: Policy, now: datetime
) -> bool:
    """Tell whether a ticket's raw mails and attachments are due for removal."""
    if state is not TicketState.CLOSED or closed_at is None:
        return False
    return closed_at < cutoffs(policy, now).tickets_closed_before


def is_mail_due(
    state: MailState, handled_at: datetime | None, policy: Policy, now: datetime
) -> bool:
    """Tell whether a mail on no kept ticket is due: quarantined or ignored, old."""
    if state not in SHORT_LIVED or handled_at is None:
        return False
    return handled_at < cutoffs(policy, now).mails_handled_before


def purge_note(purged: Purged) -> str:
    """The text of the history event a purge leaves: counts, no personal data."""
    return (
        f"retention: {purged.mails} raw mail(s) and "
        f"{purged.attachments} attachment(s) removed"
    )
