"""Every command x every role x every state, against a table written from SPEC.

The expected outcome is read from `RULES` (who may, in which states), not
computed by the code under test: a refusal names the first rule broken in
the order role, state, ownership.
"""

from __future__ import annotations

from itertools import product

import pytest

from maild.core.commands import Command, CommandKind
from maild.core.permissions import (
    Actor,
    Allowed,
    RefusalReason,
    Refused,
    TicketFacts,
    decide,
)
from maild.domain import CloseReason, Role, TicketState

K, S, R = CommandKind, TicketState, RefusalReason
OWNER, OTHER = "alice@example.com", "bob@example.com"
ACTORS = {
    "requester": Actor("marie@example.com"),
    "beneficiary": Actor("paul@example.com"),
    "watcher": Actor("pierre@example.com"),
    "owner": Actor(OWNER, Role.TECHNICIAN),
    "other_technician": Actor(OTHER, Role.TECHNICIAN),
    "supervisor": Actor("chef@example.com", Role.SUPERVISOR),
    "outsider": Actor("eve@example.com"),
}
STAFF = {"owner", "other_technician", "supervisor"}
PARTIES = {"requester", "beneficiary"}
ARGUMENTS = {K.RATE: {"score": 4}, K.ASSIGN: {"address": OTHER}}

# command -> (roles that may give it, states where it fits, is owner work)
RULES: dict[CommandKind, tuple[set[str], set[TicketState], bool]] = {
    K.CLAIM: (STAFF, {S.NEW}, False),
    K.CALL: (STAFF, {S.IN_PROGRESS}, True),
    K.PDR: (STAFF, {S.IN_PROGRESS}, True),
    K.TASK: (STAFF, {S.IN_PROGRESS}, True),
    K.RESOLVED: (STAFF, {S.IN_PROGRESS}, True),
    K.RELEASE: (STAFF, {S.IN_PROGRESS}, True),
    K.ASSIGN: ({"supervisor"}, {S.NEW, S.IN_PROGRESS}, False),
    K.ACCEPT: (PARTIES, {S.RESOLVED}, False),
    K.REFUSE: (PARTIES, {S.RESOLVED}, False),
    K.RATE: (PARTIES, {S.RESOLVED, S.CLOSED}, False),
    K.CANCEL: ({*PARTIES, "supervisor"}, {S.NEW, S.IN_PROGRESS}, False),
    K.NOTE: (STAFF, set(S), False),
}


def ticket(state: TicketState) -> TicketFacts:
    return TicketFacts(
        requester="marie@example.com",
        beneficiary="paul@example.com",
        state=state,
        owner=None if state is S.NEW else OWNER,
        watchers=frozenset({"pierre@example.com"}),
        close_reason=CloseReason.ACCEPTED if state is S.CLOSED else None,
    )


def expected(kind: CommandKind, role: str, state: TicketState) -> type | RefusalReason:
    roles, states, is_owner_work = RULES[kind]
    if role == "outsider":
        return R.NOT_ON_TICKET
    if role not in roles:
        if kind is K.ASSIGN:
            return R.NOT_SUPERVISOR
        return R.NOT_STAFF if roles <= STAFF else R.NOT_REQUESTER
    if state not in states:
        # CLAIM on a ticket someone is working is told who has it; a resolved or
        # closed ticket is simply past claiming.
        if kind is K.CLAIM and state is S.IN_PROGRESS:
            return R.ALREADY_CLAIMED
        return R.WRONG_STATE
    if is_owner_work and role == "other_technician":
        return R.NOT_OWNER
    return Allowed


CASES = list(product(RULES, ACTORS, S))


def outcome(decision: Allowed | Refused) -> type | RefusalReason:
    return decision.reason if isinstance(decision, Refused) else Allowed


@pytest.mark.parametrize("kind", list(RULES), ids=str)
def test_matrix(kind: CommandKind) -> None:
    """One test a command; a failure lists every (role, state) cell that differs."""
    command = Command(kind, text="x", **ARGUMENTS.get(kind, {}))  # type: ignore[arg-type]
    wrong = []
    for role, state in product(ACTORS, S):
        decision = decide(
            ACTORS[role], command, ticket(state), assignees=frozenset({OWNER, OTHER})
        )
        want, got = expected(kind, role, state), outcome(decision)
        if got is not want:
            wrong.append(f"{role} in {state}: want {want}, got {got}")
    assert wrong == []


def test_matrix_is_complete() -> None:
    assert len(CASES) == 12 * 7 * 4
