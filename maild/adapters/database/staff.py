"""Technicians and supervisors added from the command line. I/O (database).

The configuration lists staff too; `maild staff list` shows both, with where
each comes from. A role given here adds to the configuration's, it does not
override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from maild.adapters.database.models import StaffRow
from maild.adapters.database.store import Store
from maild.config import Settings

ROLES = ("technician", "supervisor")


@dataclass(frozen=True, slots=True)
class StaffMember:
    address: str
    role: str
    source: str  # "config" or "cli"


def add_staff(store: Store, address: str, role: str, now: datetime) -> None:
    """Add address with role, or change the role of an address added before."""
    with store.transaction() as tx:
        row = tx.session.get(StaffRow, address.lower())
        if row is None:
            tx.add(StaffRow(address=address.lower(), role=role, added_at=now))
        else:
            row.role = role


def remove_staff(store: Store, address: str) -> bool:
    """Remove an address added with the CLI; False if there was none."""
    with store.transaction() as tx:
        result = tx.session.execute(
            delete(StaffRow).where(StaffRow.address == address.lower())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def list_staff(store: Store, settings: Settings) -> list[StaffMember]:
    """Everyone with a staff role, from the configuration and from the CLI."""
    helpdesk = settings.helpdesk
    members = [StaffMember(a, "technician", "config") for a in helpdesk.technicians]
    members += [StaffMember(a, "supervisor", "config") for a in helpdesk.supervisors]
    with store.reading() as session:
        members += [
            StaffMember(r.address, r.role, "cli")
            for r in session.execute(
                select(StaffRow).order_by(StaffRow.address)
            ).scalars()
        ]
    return members
