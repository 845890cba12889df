"""Who is staff: the configuration's technicians and supervisors, and those added
with `maild staff`. No I/O: the added ones come from the store's session.
"""

from __future__ import annotations

from collections.abc import Mapping

from maild.config import Settings
from maild.domain import Role


def staff_role(
    address: str, settings: Settings, added: Mapping[str, Role]
) -> Role | None:
    """The staff role of an address: configuration first, then the CLI's list."""
    helpdesk, address = settings.helpdesk, address.lower()
    if address in helpdesk.supervisors or added.get(address) == Role.SUPERVISOR:
        return Role.SUPERVISOR
    if address in helpdesk.technicians or added.get(address) == Role.TECHNICIAN:
        return Role.TECHNICIAN
    return None


def members(
    settings: Settings, added: Mapping[str, Role], role: Role
) -> tuple[str, ...]:
    """The technicians or the supervisors: configured and added, sorted."""
    helpdesk = settings.helpdesk
    configured = (
        helpdesk.supervisors if role is Role.SUPERVISOR else helpdesk.technicians
    )
    return tuple(sorted({*configured, *(a for a, r in added.items() if r == role)}))


def assignees(settings: Settings, added: Mapping[str, Role]) -> frozenset[str]:
    """Who ASSIGN may name: every technician and supervisor."""
    helpdesk = settings.helpdesk
    return frozenset((*helpdesk.technicians, *helpdesk.supervisors, *added))


def staff_addresses(settings: Settings, added: Mapping[str, Role]) -> frozenset[str]:
    """Staff from the configuration and the CLI, and the pool: never capped."""
    helpdesk = settings.helpdesk
    return frozenset(
        (*helpdesk.technicians, *helpdesk.supervisors, helpdesk.pool_address, *added)
    )


def role_for_help(role: Role | None) -> Role:
    """The role whose help and list a sender gets."""
    return role if role is not None else Role.REQUESTER
