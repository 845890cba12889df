"""Notifications: what happened -> who is told what. Pure.

Outcomes are values; each gives the tuple of Notification values that the
service renders and queues in the same transaction as the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from maild.domain import Audience, Notification, Person, TicketView


@dataclass(frozen=True, slots=True)
class TicketOpened:
    ticket: TicketView
    note: str  # e.g. why the named beneficiary was not taken
    source_message_id: str  # the mail that opened it, answered by the confirmation


Outcome = TicketOpened


@dataclass(frozen=True, slots=True)
class Caps:
    per_hour: int
    per_day: int


def notifications_for(outcome: Outcome, pool_address: str
                      ) -> tuple[Notification, ...]:
    """Say who is told what about an outcome."""
    match outcome:
        case TicketOpened():
            return _ticket_opened(outcome, pool_address)
        case _:
            assert_never(outcome)


def _ticket_opened(outcome: TicketOpened, pool_address: str
                   ) -> tuple[Notification, ...]:
    ticket = outcome.ticket
    people = _unique((ticket.requester, ticket.beneficiary, *ticket.watchers))
    return (
        Notification(template="confirmation", audience=Audience.REQUESTER,
                     to=people, ticket=ticket, note=outcome.note,
                     in_reply_to=outcome.source_message_id, is_capped=True),
        Notification(template="announcement", audience=Audience.POOL,
                     to=(pool_address,), ticket=ticket),
    )


def is_over_cap(sent_last_hour: int, sent_last_day: int, caps: Caps) -> bool:
    """Tell whether one more automatic answer to an address would pass a cap."""
    return sent_last_hour >= caps.per_hour or sent_last_day >= caps.per_day


def _unique(people: tuple[Person, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for person in people:
        if person.address:
            seen.setdefault(person.address, None)
    return tuple(seen)
