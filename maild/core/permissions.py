"""Step: (Actor, Command, ticket facts) -> Allowed or Refused with a reason. No I/O.

Who may do what (SPEC roles table), checked in this order, the first failure
giving the reason: the sender is on the ticket or staff (`not_on_ticket`);
their role allows the command (`not_staff`, `not_supervisor`,
`not_requester`); its argument is valid (`invalid_argument`, `not_assignable`);
it fits the ticket's state (`already_claimed`, `wrong_state`); a technician
works only on tickets they own (`not_owner`).

Choices where SPEC is silent:
- The beneficiary may CANCEL, as the roles table says it may do what the
  requester may; a supervisor may CANCEL too (duplicates, tickets opened by
  mistake). A technician may not: RELEASE is theirs.
- ACCEPT, REFUSE and RATE stay the requester's and beneficiary's verdict:
  supervisors cannot give it for them.
- NOTE is for any staff member on any ticket, in any state.
- CALL, PDR, TASK, RESOLVED, RELEASE: the owner, or any supervisor. On a ticket
  in the pool the answer is `wrong_state` (claim it first), not `not_owner`.
- CLAIM on a claimed ticket is `already_claimed` and carries the owner (also
  when the sender is the owner).
- RATE on a ticket closed as cancelled is `wrong_state`: nothing was resolved.
- RATE on a closed ticket counts within `retention.rate_days_after_close`
  days of its closure (`may_rate_closed`); after that a reply to the closed
  ticket is only kept, like any other.
- Addresses are compared without case.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, assert_never

from maild.core.commands import MAX_SCORE, MIN_SCORE, Command, CommandKind
from maild.core.workflow import allowed_in, state_after
from maild.domain import CloseReason, EventKind, Role, TicketState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Actor:
    """The sender of a command, with the staff role configuration gives them."""

    address: str
    staff_role: Role | None = None  # Role.TECHNICIAN or Role.SUPERVISOR: staff

    @property
    def is_staff(self) -> bool:
        return self.staff_role in STAFF_ROLES

    @property
    def is_supervisor(self) -> bool:
        return self.staff_role is Role.SUPERVISOR


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What a permission depends on about a ticket."""

    requester: str
    beneficiary: str
    state: TicketState
    owner: str | None = None
    watchers: frozenset[str] = frozenset()
    close_reason: CloseReason | None = None


STAFF_ROLES: Final = frozenset({Role.TECHNICIAN, Role.SUPERVISOR})


class RefusalReason(StrEnum):
    NOT_ON_TICKET = "not_on_ticket"  # neither requester, beneficiary, watcher nor staff
    NOT_STAFF = "not_staff"
    NOT_SUPERVISOR = "not_supervisor"
    NOT_REQUESTER = "not_requester"  # nor the beneficiary
    NOT_OWNER = "not_owner"
    ALREADY_CLAIMED = "already_claimed"
    WRONG_STATE = "wrong_state"
    INVALID_ARGUMENT = "invalid_argument"
    NOT_ASSIGNABLE = "not_assignable"  # ASSIGN to someone who is not a technician


@dataclass(frozen=True, slots=True)
class Allowed:
    event: EventKind
    next_state: TicketState


@dataclass(frozen=True, slots=True)
class Refused:
    reason: RefusalReason
    state: TicketState  # the ticket's state when the command came
    owner: str | None = None  # who has the ticket: already_claimed, not_owner


Decision = Allowed | Refused

_OWNER_WORK: Final = frozenset(
    {
        CommandKind.CALL,
        CommandKind.PDR,
        CommandKind.TASK,
        CommandKind.RESOLVED,
        CommandKind.RELEASE,
    }
)


def roles_of(actor: Actor, ticket: TicketFacts) -> frozenset[Role]:
    """Return every role the sender has on this ticket."""
    address = actor.address.lower()
    candidates = {
        Role.REQUESTER: address == ticket.requester.lower(),
        Role.BENEFICIARY: address == ticket.beneficiary.lower(),
        Role.WATCHER: address in {w.lower() for w in ticket.watchers},
        Role.TECHNICIAN: actor.staff_role is Role.TECHNICIAN,
        Role.SUPERVISOR: actor.is_supervisor,
    }
    return frozenset(role for role, has_role in candidates.items() if has_role)


def decide(
    actor: Actor,
    command: Command,
    ticket: TicketFacts,
    *,
    assignees: Container[str] | None = None,
) -> Decision:
    """Decide whether this sender may apply this command to this ticket now.

    `assignees` are the addresses ASSIGN may name (technicians and
    supervisors, lower-case); None when the caller checks that itself.
    """
    reason = (
        _role_problem(actor, command.kind, ticket)
        or _argument_problem(command, assignees)
        or _state_problem(command.kind, ticket)
        or _ownership_problem(actor, command.kind, ticket)
    )
    if reason is not None:
        log.debug("refused %s: %s", command.kind, reason)
        return Refused(reason, ticket.state, _owner_to_tell(reason, ticket))
    event = command.kind.event
    return Allowed(event, state_after(ticket.state, event))


def decide_all(
    actor: Actor,
    commands: Sequence[Command],
    ticket: TicketFacts,
    *,
    assignees: Container[str] | None = None,
) -> tuple[Decision, ...]:
    """Decide a reply's commands in order, each on the ticket the previous left."""
    decisions: list[Decision] = []
    for command in commands:
        decision = decide(actor, command, ticket, assignees=assignees)
        decisions.append(decision)
        if isinstance(decision, Allowed):
            ticket = facts_after(ticket, actor, command)
    return tuple(decisions)


def facts_after(ticket: TicketFacts, actor: Actor, command: Command) -> TicketFacts:
    """Return the ticket as an allowed command leaves it."""
    state = state_after(ticket.state, command.kind.event)
    match command.kind:
        case CommandKind.CLAIM:
            return replace(ticket, state=state, owner=actor.address.lower())
        case CommandKind.ASSIGN:
            return replace(ticket, state=state, owner=command.address.lower())
        case CommandKind.RELEASE:
            return replace(ticket, state=state, owner=None)
        case CommandKind.CANCEL:
            return replace(ticket, state=state, close_reason=CloseReason.CANCELLED)
        case CommandKind.ACCEPT:
            return replace(ticket, state=state, close_reason=CloseReason.ACCEPTED)
        case (
            CommandKind.CALL
            | CommandKind.PDR
            | CommandKind.TASK
            | CommandKind.RESOLVED
            | CommandKind.REFUSE
            | CommandKind.RATE
            | CommandKind.NOTE
        ):
            return replace(ticket, state=state)
        case _:  # pragma: no cover - exhaustive, checked by mypy
            assert_never(command.kind)


def may_rate_closed(closed_at: datetime | None, now: datetime, days: int) -> bool:
    """Tell whether a closed ticket may still be rated now."""
    return closed_at is not None and now < closed_at + timedelta(days=days)


def _role_problem(
    actor: Actor, kind: CommandKind, ticket: TicketFacts
) -> RefusalReason | None:
    roles = roles_of(actor, ticket)
    is_party = bool(roles & {Role.REQUESTER, Role.BENEFICIARY})
    if not actor.is_staff and not roles:
        return RefusalReason.NOT_ON_TICKET
    match kind:
        case (
            CommandKind.CLAIM
            | CommandKind.NOTE
            | CommandKind.CALL
            | CommandKind.PDR
            | CommandKind.TASK
            | CommandKind.RESOLVED
            | CommandKind.RELEASE
        ):
            allowed, reason = actor.is_staff, RefusalReason.NOT_STAFF
        case CommandKind.ASSIGN:
            allowed, reason = actor.is_supervisor, RefusalReason.NOT_SUPERVISOR
        case CommandKind.ACCEPT | CommandKind.REFUSE | CommandKind.RATE:
            allowed, reason = is_party, RefusalReason.NOT_REQUESTER
        case CommandKind.CANCEL:
            allowed = is_party or actor.is_supervisor
            reason = RefusalReason.NOT_REQUESTER
        case _:  # pragma: no cover - exhaustive, checked by mypy
            assert_never(kind)
    return None if allowed else reason


def _argument_problem(
    command: Command, assignees: Container[str] | None
) -> RefusalReason | None:
    match command.kind:
        case CommandKind.RATE:
            score = command.score
            is_valid = score is not None and MIN_SCORE <= score <= MAX_SCORE
        case CommandKind.ASSIGN:
            if "@" not in command.address:
                return RefusalReason.INVALID_ARGUMENT
            if assignees is not None and command.address.lower() not in assignees:
                return RefusalReason.NOT_ASSIGNABLE
            is_valid = True
        case CommandKind.TASK | CommandKind.NOTE:
            is_valid = bool(command.text.strip())
        case _:
            is_valid = True
    return None if is_valid else RefusalReason.INVALID_ARGUMENT


def _state_problem(kind: CommandKind, ticket: TicketFacts) -> RefusalReason | None:
    if kind is CommandKind.CLAIM and ticket.state is TicketState.IN_PROGRESS:
        return RefusalReason.ALREADY_CLAIMED
    if kind is CommandKind.RATE and ticket.close_reason is CloseReason.CANCELLED:
        return RefusalReason.WRONG_STATE
    if not allowed_in(ticket.state, kind.event):
        return RefusalReason.WRONG_STATE
    return None


def _ownership_problem(
    actor: Actor, kind: CommandKind, ticket: TicketFacts
) -> RefusalReason | None:
    if kind not in _OWNER_WORK or actor.is_supervisor:
        return None
    owner = (ticket.owner or "").lower()
    return None if owner == actor.address.lower() else RefusalReason.NOT_OWNER


def _owner_to_tell(reason: RefusalReason, ticket: TicketFacts) -> str | None:
    if reason in {RefusalReason.ALREADY_CLAIMED, RefusalReason.NOT_OWNER}:
        return ticket.owner
    return None
