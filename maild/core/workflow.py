"""Step: the ticket state machine, as data. No I/O.

`next_state` knows the events that move a ticket (SPEC "States");
`allowed_in` also knows the events that leave the state as it is and the
states they fit; `state_after` combines both for a caller applying events in
order.

Choices where SPEC is silent:
- RESOLVED works from `in_progress` only. A technician who answers a new
  ticket with "CLAIM\\nRESOLVED" gets both in order, so `new -> resolved` is
  not needed, and every resolved ticket has an owner to send a REFUSE back to.
- ASSIGN works from `in_progress` to `in_progress` (a supervisor moves a
  ticket to another technician) as well as from `new`.
- CALL, PDR and TASK fit `in_progress` only: work is logged by the owner.
- NOTE, COMMENT, COMMAND_REFUSED, NOTIFIED, AUTO_REPLY and BOUNCE fit every
  state: staff may annotate a closed ticket and a late answer is still kept.
- RATED fits `resolved` and `closed` (whether a cancelled ticket may be rated
  is a permission question: see core/permissions.py).
- REMINDER and BREACH fit `new` and `in_progress` (the call-back SLA runs until
  the ticket is resolved); REANNOUNCED fits `new` only.
- CREATED fits no state: it makes the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from maild.domain import EventKind, TicketState
from maild.errors import InvalidTransition

_NEW = TicketState.NEW
_IN_PROGRESS = TicketState.IN_PROGRESS
_RESOLVED = TicketState.RESOLVED
_CLOSED = TicketState.CLOSED

_NEXT: Final[Mapping[tuple[TicketState, EventKind], TicketState]] = {
    (_NEW, EventKind.CLAIMED): _IN_PROGRESS,
    (_NEW, EventKind.ASSIGNED): _IN_PROGRESS,
    (_IN_PROGRESS, EventKind.ASSIGNED): _IN_PROGRESS,
    (_IN_PROGRESS, EventKind.RELEASED): _NEW,
    (_IN_PROGRESS, EventKind.RESOLVED): _RESOLVED,
    (_RESOLVED, EventKind.REFUSED): _IN_PROGRESS,
    (_RESOLVED, EventKind.ACCEPTED): _CLOSED,
    (_RESOLVED, EventKind.AUTO_CLOSED): _CLOSED,
    (_NEW, EventKind.CANCELLED): _CLOSED,
    (_IN_PROGRESS, EventKind.CANCELLED): _CLOSED,
}

_EVERY_STATE: Final = frozenset(TicketState)
_OPEN: Final = frozenset({_NEW, _IN_PROGRESS})

# Events that record something without moving the ticket, and where they fit.
_STAYS: Final[Mapping[EventKind, frozenset[TicketState]]] = {
    EventKind.CALL: frozenset({_IN_PROGRESS}),
    EventKind.PDR: frozenset({_IN_PROGRESS}),
    EventKind.TASK: frozenset({_IN_PROGRESS}),
    EventKind.NOTE: _EVERY_STATE,
    EventKind.COMMENT: _EVERY_STATE,
    EventKind.RATED: frozenset({_RESOLVED, _CLOSED}),
    EventKind.NOTIFIED: _EVERY_STATE,
    EventKind.COMMAND_REFUSED: _EVERY_STATE,
    EventKind.AUTO_REPLY: _EVERY_STATE,
    EventKind.BOUNCE: _EVERY_STATE,
    EventKind.PURGED: frozenset({_CLOSED}),
    EventKind.ANONYMISED: _EVERY_STATE,
    EventKind.REMINDER: _OPEN,
    EventKind.BREACH: _OPEN,
    EventKind.REANNOUNCED: frozenset({_NEW}),
}


def next_state(state: TicketState, event: EventKind) -> TicketState:
    """Return the state a transition event moves a ticket to."""
    try:
        return _NEXT[state, event]
    except KeyError:
        raise InvalidTransition(state, event) from None


def allowed_in(state: TicketState, event: EventKind) -> bool:
    """Tell whether an event, moving or not, fits a ticket in this state."""
    return (state, event) in _NEXT or state in _STAYS.get(event, frozenset())


def state_after(state: TicketState, event: EventKind) -> TicketState:
    """Return the state after any event: moved, or unchanged where it fits."""
    if (state, event) in _NEXT:
        return _NEXT[state, event]
    if state in _STAYS.get(event, frozenset()):
        return state
    raise InvalidTransition(state, event)


def is_transition(event: EventKind) -> bool:
    """Tell whether an event ever changes a ticket's state."""
    return any(known is event for _, known in _NEXT)
