"""core/workflow.py: the ticket state machine (SPEC "States")."""

from __future__ import annotations

import pytest

from maild.core.workflow import allowed_in, is_transition, next_state, state_after
from maild.domain import EventKind, TicketState
from maild.errors import InvalidTransition

S = TicketState
E = EventKind

TRANSITIONS = [
    (S.NEW, E.CLAIMED, S.IN_PROGRESS),
    (S.NEW, E.ASSIGNED, S.IN_PROGRESS),
    (S.IN_PROGRESS, E.ASSIGNED, S.IN_PROGRESS),
    (S.IN_PROGRESS, E.RELEASED, S.NEW),
    (S.IN_PROGRESS, E.RESOLVED, S.RESOLVED),
    (S.RESOLVED, E.REFUSED, S.IN_PROGRESS),
    (S.RESOLVED, E.ACCEPTED, S.CLOSED),
    (S.RESOLVED, E.AUTO_CLOSED, S.CLOSED),
    (S.NEW, E.CANCELLED, S.CLOSED),
    (S.IN_PROGRESS, E.CANCELLED, S.CLOSED),
]
_KNOWN = {(state, event) for state, event, _ in TRANSITIONS}


@pytest.mark.parametrize(("state", "event", "after"), TRANSITIONS)
def test_transition(state: TicketState, event: EventKind, after: TicketState) -> None:
    assert next_state(state, event) is after
    assert state_after(state, event) is after
    assert allowed_in(state, event)


@pytest.mark.parametrize("state", list(TicketState))
def test_any_other_pair_is_no_transition(state: TicketState) -> None:
    """Every (state, event) pair outside TRANSITIONS; a failure lists them all."""
    moved = []
    for event in EventKind:
        if (state, event) in _KNOWN:
            continue
        try:
            next_state(state, event)
        except InvalidTransition as refused:
            if (refused.state, refused.event) != (state, event):
                moved.append(f"{event}: refusal names {refused.state}/{refused.event}")
        else:
            moved.append(f"{event}: moves the ticket")
    assert moved == []


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.NEW, E.RESOLVED),  # claim first: "CLAIM\nRESOLVED" does both
        (S.IN_PROGRESS, E.CLAIMED),
        (S.RESOLVED, E.CANCELLED),
        (S.CLOSED, E.REFUSED),
        (S.CLOSED, E.CANCELLED),
        (S.NEW, E.ACCEPTED),
        (S.RESOLVED, E.ASSIGNED),
    ],
)
def test_spec_refusals(state: TicketState, event: EventKind) -> None:
    assert not allowed_in(state, event)
    with pytest.raises(InvalidTransition):
        state_after(state, event)


STAYING = {
    E.CALL: {S.IN_PROGRESS},
    E.PDR: {S.IN_PROGRESS},
    E.TASK: {S.IN_PROGRESS},
    E.NOTE: set(TicketState),
    E.COMMENT: set(TicketState),
    E.RATED: {S.RESOLVED, S.CLOSED},
    E.NOTIFIED: set(TicketState),
    E.COMMAND_REFUSED: set(TicketState),
    E.AUTO_REPLY: set(TicketState),
    E.BOUNCE: set(TicketState),
    E.REMINDER: {S.NEW, S.IN_PROGRESS},
    E.BREACH: {S.NEW, S.IN_PROGRESS},
    E.REANNOUNCED: {S.NEW},
    E.PURGED: {S.CLOSED},  # retention: only a closed ticket loses its mails
    E.ANONYMISED: set(TicketState),  # an erasure request, whatever the state
    E.CREATED: set(),
}


@pytest.mark.parametrize("state", list(TicketState))
def test_event_that_does_not_move_the_ticket(state: TicketState) -> None:
    """Each staying event fits where STAYING says, and leaves the state as it is."""
    wrong = []
    for event, states in STAYING.items():
        fits = state in states
        if allowed_in(state, event) is not fits:
            wrong.append(f"{event}: allowed_in is {not fits}")
        try:
            after = state_after(state, event)
        except InvalidTransition:
            after = None
        if after is not (state if fits else None):
            wrong.append(f"{event}: state_after gives {after}")
    assert wrong == []


@pytest.mark.parametrize("event", list(EventKind))
def test_is_transition(event: EventKind) -> None:
    assert is_transition(event) is any(event is known for _, known, _ in TRANSITIONS)


def test_every_event_is_either_moving_or_staying() -> None:
    assert {e for e in EventKind if not is_transition(e)} == set(STAYING)


def test_claim_then_resolve_in_order() -> None:
    state = S.NEW
    for event in (E.CLAIMED, E.CALL, E.RESOLVED, E.REFUSED, E.RESOLVED, E.ACCEPTED):
        state = state_after(state, event)
    assert state is S.CLOSED
