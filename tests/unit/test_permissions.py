"""core/permissions.py: who may do what, and when (SPEC roles table and "States")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from maild.core.commands import Command, CommandKind, parse_commands
from maild.core.permissions import (
    Actor,
    Allowed,
    Decision,
    RefusalReason,
    Refused,
    TicketFacts,
    decide,
    decide_all,
    facts_after,
    may_rate_closed,
    roles_of,
)
from maild.domain import CloseReason, EventKind, Role, TicketState

K = CommandKind
S = TicketState
R = RefusalReason

REQUESTER = Actor("paul@example.com")
BENEFICIARY = Actor("marie@example.com")
WATCHER = Actor("cc@example.com")
OUTSIDER = Actor("someone@elsewhere.example")
OWNER = Actor("alice@example.com", Role.TECHNICIAN)
OTHER_TECH = Actor("bob@example.com", Role.TECHNICIAN)
SUPERVISOR = Actor("chef@example.com", Role.SUPERVISOR)


def make_ticket(
    state: TicketState = S.IN_PROGRESS,
    owner: str | None = "alice@example.com",
    close_reason: CloseReason | None = None,
) -> TicketFacts:
    if state is S.NEW:
        owner = None
    return TicketFacts(
        requester="Paul@Example.com",
        beneficiary="marie@example.com",
        state=state,
        owner=owner,
        watchers=frozenset({"cc@example.com"}),
        close_reason=close_reason,
    )


def cmd(kind: CommandKind, **fields: object) -> Command:
    defaults: dict[str, object] = {
        K.TASK: {"text": "did it"},
        K.NOTE: {"text": "internal"},
        K.RATE: {"score": 4},
        K.ASSIGN: {"address": "bob@example.com"},
    }.get(kind, {})
    return replace(Command(kind), **{**defaults, **fields})


def allowed(event: EventKind, after: TicketState) -> Allowed:
    return Allowed(event, after)


def refused(
    reason: RefusalReason, state: TicketState, owner: str | None = None
) -> Refused:
    return Refused(reason, state, owner)


CASES: list[tuple[str, Actor, Command, TicketFacts, Decision]] = [
    # technician
    (
        "tech-claims-pool",
        OTHER_TECH,
        cmd(K.CLAIM),
        make_ticket(S.NEW),
        allowed(EventKind.CLAIMED, S.IN_PROGRESS),
    ),
    (
        "claim-claimed-tells-owner",
        OTHER_TECH,
        cmd(K.CLAIM),
        make_ticket(),
        refused(R.ALREADY_CLAIMED, S.IN_PROGRESS, "alice@example.com"),
    ),
    (
        "owner-claims-again",
        OWNER,
        cmd(K.CLAIM),
        make_ticket(),
        refused(R.ALREADY_CLAIMED, S.IN_PROGRESS, "alice@example.com"),
    ),
    (
        "claim-resolved",
        OTHER_TECH,
        cmd(K.CLAIM),
        make_ticket(S.RESOLVED),
        refused(R.WRONG_STATE, S.RESOLVED),
    ),
    (
        "owner-calls",
        OWNER,
        cmd(K.CALL),
        make_ticket(),
        allowed(EventKind.CALL, S.IN_PROGRESS),
    ),
    (
        "owner-pdr",
        OWNER,
        cmd(K.PDR, text="no answer"),
        make_ticket(),
        allowed(EventKind.PDR, S.IN_PROGRESS),
    ),
    (
        "owner-task",
        OWNER,
        cmd(K.TASK),
        make_ticket(),
        allowed(EventKind.TASK, S.IN_PROGRESS),
    ),
    (
        "owner-resolves",
        OWNER,
        cmd(K.RESOLVED, text="done"),
        make_ticket(),
        allowed(EventKind.RESOLVED, S.RESOLVED),
    ),
    (
        "owner-releases",
        OWNER,
        cmd(K.RELEASE),
        make_ticket(),
        allowed(EventKind.RELEASED, S.NEW),
    ),
    (
        "owner-case-differs",
        Actor("ALICE@example.com", Role.TECHNICIAN),
        cmd(K.CALL),
        make_ticket(),
        allowed(EventKind.CALL, S.IN_PROGRESS),
    ),
    (
        "other-tech-calls",
        OTHER_TECH,
        cmd(K.CALL),
        make_ticket(),
        refused(R.NOT_OWNER, S.IN_PROGRESS, "alice@example.com"),
    ),
    (
        "other-tech-resolves",
        OTHER_TECH,
        cmd(K.RESOLVED),
        make_ticket(),
        refused(R.NOT_OWNER, S.IN_PROGRESS, "alice@example.com"),
    ),
    (
        "other-tech-releases",
        OTHER_TECH,
        cmd(K.RELEASE),
        make_ticket(),
        refused(R.NOT_OWNER, S.IN_PROGRESS, "alice@example.com"),
    ),
    (
        "call-in-pool",
        OTHER_TECH,
        cmd(K.CALL),
        make_ticket(S.NEW),
        refused(R.WRONG_STATE, S.NEW),
    ),
    (
        "resolve-in-pool",
        OTHER_TECH,
        cmd(K.RESOLVED),
        make_ticket(S.NEW),
        refused(R.WRONG_STATE, S.NEW),
    ),
    (
        "task-after-resolved",
        OWNER,
        cmd(K.TASK),
        make_ticket(S.RESOLVED),
        refused(R.WRONG_STATE, S.RESOLVED),
    ),
    (
        "resolve-twice",
        OWNER,
        cmd(K.RESOLVED),
        make_ticket(S.RESOLVED),
        refused(R.WRONG_STATE, S.RESOLVED),
    ),
    (
        "tech-notes-any-ticket",
        OTHER_TECH,
        cmd(K.NOTE),
        make_ticket(S.CLOSED),
        allowed(EventKind.NOTE, S.CLOSED),
    ),
    (
        "tech-cannot-assign",
        OWNER,
        cmd(K.ASSIGN),
        make_ticket(),
        refused(R.NOT_SUPERVISOR, S.IN_PROGRESS),
    ),
    (
        "tech-cannot-cancel",
        OWNER,
        cmd(K.CANCEL),
        make_ticket(),
        refused(R.NOT_REQUESTER, S.IN_PROGRESS),
    ),
    (
        "tech-cannot-accept",
        OWNER,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        refused(R.NOT_REQUESTER, S.RESOLVED),
    ),
    (
        "empty-task",
        OWNER,
        Command(K.TASK),
        make_ticket(),
        refused(R.INVALID_ARGUMENT, S.IN_PROGRESS),
    ),
    (
        "blank-note",
        OWNER,
        Command(K.NOTE, text="  "),
        make_ticket(),
        refused(R.INVALID_ARGUMENT, S.IN_PROGRESS),
    ),
    # supervisor
    (
        "sup-assigns-pool",
        SUPERVISOR,
        cmd(K.ASSIGN),
        make_ticket(S.NEW),
        allowed(EventKind.ASSIGNED, S.IN_PROGRESS),
    ),
    (
        "sup-reassigns",
        SUPERVISOR,
        cmd(K.ASSIGN),
        make_ticket(),
        allowed(EventKind.ASSIGNED, S.IN_PROGRESS),
    ),
    (
        "sup-assigns-resolved",
        SUPERVISOR,
        cmd(K.ASSIGN),
        make_ticket(S.RESOLVED),
        refused(R.WRONG_STATE, S.RESOLVED),
    ),
    (
        "sup-assign-no-address",
        SUPERVISOR,
        Command(K.ASSIGN),
        make_ticket(),
        refused(R.INVALID_ARGUMENT, S.IN_PROGRESS),
    ),
    (
        "sup-calls-others-ticket",
        SUPERVISOR,
        cmd(K.CALL),
        make_ticket(),
        allowed(EventKind.CALL, S.IN_PROGRESS),
    ),
    (
        "sup-resolves-others-ticket",
        SUPERVISOR,
        cmd(K.RESOLVED),
        make_ticket(),
        allowed(EventKind.RESOLVED, S.RESOLVED),
    ),
    (
        "sup-releases-others-ticket",
        SUPERVISOR,
        cmd(K.RELEASE),
        make_ticket(),
        allowed(EventKind.RELEASED, S.NEW),
    ),
    (
        "sup-claims",
        SUPERVISOR,
        cmd(K.CLAIM),
        make_ticket(S.NEW),
        allowed(EventKind.CLAIMED, S.IN_PROGRESS),
    ),
    (
        "sup-cancels",
        SUPERVISOR,
        cmd(K.CANCEL),
        make_ticket(S.NEW),
        allowed(EventKind.CANCELLED, S.CLOSED),
    ),
    (
        "sup-cannot-accept",
        SUPERVISOR,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        refused(R.NOT_REQUESTER, S.RESOLVED),
    ),
    (
        "sup-cannot-rate",
        SUPERVISOR,
        cmd(K.RATE),
        make_ticket(S.RESOLVED),
        refused(R.NOT_REQUESTER, S.RESOLVED),
    ),
    # requester and beneficiary
    (
        "req-accepts",
        REQUESTER,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        allowed(EventKind.ACCEPTED, S.CLOSED),
    ),
    (
        "ben-accepts",
        BENEFICIARY,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        allowed(EventKind.ACCEPTED, S.CLOSED),
    ),
    (
        "req-refuses",
        REQUESTER,
        cmd(K.REFUSE, text="still broken"),
        make_ticket(S.RESOLVED),
        allowed(EventKind.REFUSED, S.IN_PROGRESS),
    ),
    (
        "ben-refuses",
        BENEFICIARY,
        cmd(K.REFUSE),
        make_ticket(S.RESOLVED),
        allowed(EventKind.REFUSED, S.IN_PROGRESS),
    ),
    (
        "req-accepts-open",
        REQUESTER,
        cmd(K.ACCEPT),
        make_ticket(),
        refused(R.WRONG_STATE, S.IN_PROGRESS),
    ),
    (
        "req-refuses-closed",
        REQUESTER,
        cmd(K.REFUSE),
        make_ticket(S.CLOSED, close_reason=CloseReason.ACCEPTED),
        refused(R.WRONG_STATE, S.CLOSED),
    ),
    (
        "req-rates-resolved",
        REQUESTER,
        cmd(K.RATE),
        make_ticket(S.RESOLVED),
        allowed(EventKind.RATED, S.RESOLVED),
    ),
    (
        "req-rates-closed",
        REQUESTER,
        cmd(K.RATE, score=5),
        make_ticket(S.CLOSED, close_reason=CloseReason.ACCEPTED),
        allowed(EventKind.RATED, S.CLOSED),
    ),
    (
        "ben-rates-auto-closed",
        BENEFICIARY,
        cmd(K.RATE, score=1),
        make_ticket(S.CLOSED, close_reason=CloseReason.AUTO_CLOSED),
        allowed(EventKind.RATED, S.CLOSED),
    ),
    (
        "req-rates-open",
        REQUESTER,
        cmd(K.RATE),
        make_ticket(),
        refused(R.WRONG_STATE, S.IN_PROGRESS),
    ),
    (
        "req-rates-cancelled",
        REQUESTER,
        cmd(K.RATE),
        make_ticket(S.CLOSED, close_reason=CloseReason.CANCELLED),
        refused(R.WRONG_STATE, S.CLOSED),
    ),
    (
        "rate-out-of-range",
        REQUESTER,
        Command(K.RATE, score=9),
        make_ticket(S.RESOLVED),
        refused(R.INVALID_ARGUMENT, S.RESOLVED),
    ),
    (
        "rate-without-score",
        REQUESTER,
        Command(K.RATE),
        make_ticket(S.RESOLVED),
        refused(R.INVALID_ARGUMENT, S.RESOLVED),
    ),
    (
        "req-cancels-new",
        REQUESTER,
        cmd(K.CANCEL),
        make_ticket(S.NEW),
        allowed(EventKind.CANCELLED, S.CLOSED),
    ),
    (
        "req-cancels-in-progress",
        REQUESTER,
        cmd(K.CANCEL, text="gone"),
        make_ticket(),
        allowed(EventKind.CANCELLED, S.CLOSED),
    ),
    (
        "ben-cancels",
        BENEFICIARY,
        cmd(K.CANCEL),
        make_ticket(),
        allowed(EventKind.CANCELLED, S.CLOSED),
    ),
    (
        "req-cancels-resolved",
        REQUESTER,
        cmd(K.CANCEL),
        make_ticket(S.RESOLVED),
        refused(R.WRONG_STATE, S.RESOLVED),
    ),
    (
        "req-claims",
        REQUESTER,
        cmd(K.CLAIM),
        make_ticket(S.NEW),
        refused(R.NOT_STAFF, S.NEW),
    ),
    (
        "req-calls",
        REQUESTER,
        cmd(K.CALL),
        make_ticket(),
        refused(R.NOT_STAFF, S.IN_PROGRESS),
    ),
    (
        "req-notes",
        REQUESTER,
        cmd(K.NOTE),
        make_ticket(),
        refused(R.NOT_STAFF, S.IN_PROGRESS),
    ),
    (
        "req-resolves",
        REQUESTER,
        cmd(K.RESOLVED),
        make_ticket(),
        refused(R.NOT_STAFF, S.IN_PROGRESS),
    ),
    (
        "req-assigns",
        REQUESTER,
        cmd(K.ASSIGN),
        make_ticket(),
        refused(R.NOT_SUPERVISOR, S.IN_PROGRESS),
    ),
    # watcher and outsider
    (
        "watcher-accepts",
        WATCHER,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        refused(R.NOT_REQUESTER, S.RESOLVED),
    ),
    (
        "watcher-cancels",
        WATCHER,
        cmd(K.CANCEL),
        make_ticket(),
        refused(R.NOT_REQUESTER, S.IN_PROGRESS),
    ),
    (
        "watcher-claims",
        WATCHER,
        cmd(K.CLAIM),
        make_ticket(S.NEW),
        refused(R.NOT_STAFF, S.NEW),
    ),
    (
        "outsider-accepts",
        OUTSIDER,
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        refused(R.NOT_ON_TICKET, S.RESOLVED),
    ),
    (
        "outsider-claims",
        OUTSIDER,
        cmd(K.CLAIM),
        make_ticket(S.NEW),
        refused(R.NOT_ON_TICKET, S.NEW),
    ),
    # a staff member who opened a ticket for themself is its requester too
    (
        "tech-requester-accepts",
        Actor("paul@example.com", Role.TECHNICIAN),
        cmd(K.ACCEPT),
        make_ticket(S.RESOLVED),
        allowed(EventKind.ACCEPTED, S.CLOSED),
    ),
]


@pytest.mark.parametrize(
    ("actor", "command", "ticket", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    actor: Actor, command: Command, ticket: TicketFacts, expected: Decision
) -> None:
    assert decide(actor, command, ticket) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("bob@example.com", allowed(EventKind.ASSIGNED, S.IN_PROGRESS)),
        ("Bob@Example.com", allowed(EventKind.ASSIGNED, S.IN_PROGRESS)),
        ("paul@example.com", refused(R.NOT_ASSIGNABLE, S.NEW)),
    ],
)
def test_assign_only_to_staff(address: str, expected: Decision) -> None:
    assignees = frozenset({"bob@example.com", "alice@example.com"})
    decision = decide(
        SUPERVISOR,
        Command(K.ASSIGN, address=address),
        make_ticket(S.NEW),
        assignees=assignees,
    )
    assert decision == expected


@pytest.mark.parametrize(
    ("actor", "roles"),
    [
        (REQUESTER, {Role.REQUESTER}),
        (Actor("MARIE@example.com"), {Role.BENEFICIARY}),
        (Actor("CC@Example.com"), {Role.WATCHER}),
        (OWNER, {Role.TECHNICIAN}),
        (SUPERVISOR, {Role.SUPERVISOR}),
        (OUTSIDER, set()),
        (
            Actor("paul@example.com", Role.SUPERVISOR),
            {Role.REQUESTER, Role.SUPERVISOR},
        ),
    ],
)
def test_roles_of(actor: Actor, roles: set[Role]) -> None:
    assert roles_of(actor, make_ticket()) == roles


def test_requester_who_is_beneficiary_has_both_roles() -> None:
    ticket = TicketFacts("paul@example.com", "paul@example.com", S.NEW)
    assert roles_of(REQUESTER, ticket) == {Role.REQUESTER, Role.BENEFICIARY}


def test_claim_then_resolved_in_one_mail() -> None:
    parsed = parse_commands("CLAIM\nRESOLVED\nPrinter replaced.")
    decisions = decide_all(OTHER_TECH, parsed.commands, make_ticket(S.NEW))
    assert decisions == (
        allowed(EventKind.CLAIMED, S.IN_PROGRESS),
        allowed(EventKind.RESOLVED, S.RESOLVED),
    )


def test_refused_command_changes_nothing_for_the_next() -> None:
    commands = (Command(K.CALL), Command(K.CLAIM), Command(K.CALL))
    decisions = decide_all(OTHER_TECH, commands, make_ticket(S.NEW))
    assert decisions == (
        refused(R.WRONG_STATE, S.NEW),
        allowed(EventKind.CLAIMED, S.IN_PROGRESS),
        allowed(EventKind.CALL, S.IN_PROGRESS),
    )


def test_second_claim_is_told_who_won() -> None:
    first = decide_all(OWNER, (Command(K.CLAIM),), make_ticket(S.NEW))
    assert first == (allowed(EventKind.CLAIMED, S.IN_PROGRESS),)
    after = facts_after(make_ticket(S.NEW), OWNER, Command(K.CLAIM))
    assert decide(OTHER_TECH, Command(K.CLAIM), after) == refused(
        R.ALREADY_CLAIMED, S.IN_PROGRESS, "alice@example.com"
    )


def test_accept_then_rate() -> None:
    commands = (Command(K.ACCEPT), Command(K.RATE, score=5))
    decisions = decide_all(REQUESTER, commands, make_ticket(S.RESOLVED))
    assert decisions == (
        allowed(EventKind.ACCEPTED, S.CLOSED),
        allowed(EventKind.RATED, S.CLOSED),
    )


def test_cancel_then_rate_is_refused() -> None:
    commands = (Command(K.CANCEL), Command(K.RATE, score=5))
    decisions = decide_all(REQUESTER, commands, make_ticket(S.NEW))
    assert decisions[1] == refused(R.WRONG_STATE, S.CLOSED)


@pytest.mark.parametrize(
    ("actor", "command", "before", "owner", "state", "close_reason"),
    [
        (OTHER_TECH, Command(K.CLAIM), S.NEW, "bob@example.com", S.IN_PROGRESS, None),
        (
            SUPERVISOR,
            Command(K.ASSIGN, address="Bob@Example.com"),
            S.IN_PROGRESS,
            "bob@example.com",
            S.IN_PROGRESS,
            None,
        ),
        (OWNER, Command(K.RELEASE), S.IN_PROGRESS, None, S.NEW, None),
        (
            OWNER,
            Command(K.RESOLVED),
            S.IN_PROGRESS,
            "alice@example.com",
            S.RESOLVED,
            None,
        ),
        (
            OWNER,
            Command(K.CALL),
            S.IN_PROGRESS,
            "alice@example.com",
            S.IN_PROGRESS,
            None,
        ),
        (
            OWNER,
            Command(K.NOTE, text="x"),
            S.IN_PROGRESS,
            "alice@example.com",
            S.IN_PROGRESS,
            None,
        ),
        (
            REQUESTER,
            Command(K.REFUSE),
            S.RESOLVED,
            "alice@example.com",
            S.IN_PROGRESS,
            None,
        ),
        (
            REQUESTER,
            Command(K.ACCEPT),
            S.RESOLVED,
            "alice@example.com",
            S.CLOSED,
            CloseReason.ACCEPTED,
        ),
        (
            REQUESTER,
            Command(K.CANCEL),
            S.IN_PROGRESS,
            "alice@example.com",
            S.CLOSED,
            CloseReason.CANCELLED,
        ),
        (
            REQUESTER,
            Command(K.RATE, score=3),
            S.RESOLVED,
            "alice@example.com",
            S.RESOLVED,
            None,
        ),
    ],
)
def test_facts_after(
    actor: Actor,
    command: Command,
    before: TicketState,
    owner: str | None,
    state: TicketState,
    close_reason: CloseReason | None,
) -> None:
    after = facts_after(make_ticket(before), actor, command)
    assert (after.owner, after.state, after.close_reason) == (
        owner,
        state,
        close_reason,
    )


@pytest.mark.parametrize(
    ("closed_at", "days", "expected"),
    [
        (datetime(2026, 12, 1, 9, tzinfo=UTC), 30, True),
        (datetime(2026, 11, 5, 10, tzinfo=UTC), 30, True),  # a minute before the end
        (datetime(2026, 11, 5, 9, 59, tzinfo=UTC), 30, False),
        (datetime(2026, 12, 5, 9, tzinfo=UTC), 0, False),  # 0: never after closure
        (None, 30, False),
    ],
)
def test_a_closed_ticket_may_be_rated_for_a_while(
    closed_at: datetime | None, days: int, expected: bool
) -> None:
    now = datetime(2026, 12, 5, 9, 59, tzinfo=UTC)
    assert may_rate_closed(closed_at, now, days) is expected
