"""What doctor and the metrics read from the database. I/O (database reads).

`desk_figures` gathers, in one read session, the figures core.health judges
and the metrics endpoint exports; `schema_revision` says which migration the
database is at, without Alembic.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, inspect, or_, select, text
from sqlalchemy.exc import InterfaceError, OperationalError

from maild.adapters.database.mail_report import count_by_fate
from maild.adapters.database.models import MailRow, OutboxRow, TicketRow
from maild.adapters.database.store import Store
from maild.core.health import DeskFigures
from maild.domain import MailState, OutboxState, TicketState, Urgency
from maild.errors import StoreUnavailable

_OPEN = (TicketState.NEW.value, TicketState.IN_PROGRESS.value)
_BUG_REASONS = or_(
    MailRow.reason.like("internal error%"), MailRow.reason.like("handling failed%")
)


def schema_revision(store: Store) -> str | None:
    """The database's Alembic revision; None when it holds no maild schema.

    Raises StoreUnavailable when the database cannot be reached.
    """
    try:
        with store.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            found = connection.execute(text("SELECT version_num FROM alembic_version"))
            return found.scalar_one_or_none()
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(str(exc).splitlines()[0]) from exc


def desk_figures(store: Store, now: datetime, recent: timedelta) -> DeskFigures:
    """The desk's figures now; `recent`: how far back a bug's quarantine counts."""
    tickets = {state.value: 0 for state in TicketState}
    by_urgency = {urgency.value: 0 for urgency in Urgency}
    outbox = {state: 0 for state in (OutboxState.PENDING, OutboxState.FAILED)}
    with store.reading() as session:
        for state, count in session.execute(
            select(TicketRow.status, func.count()).group_by(TicketRow.status)
        ):
            tickets[state] = int(count)
        for urgency, count in session.execute(
            select(TicketRow.urgency, func.count())
            .where(TicketRow.status != TicketState.CLOSED.value)
            .group_by(TicketRow.urgency)
        ):
            by_urgency[urgency] = int(count)
        for state, count in session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
        ):
            outbox[OutboxState(state)] = int(count)
        oldest = session.execute(
            select(func.min(OutboxRow.created_at)).where(
                OutboxRow.state == OutboxState.PENDING.value
            )
        ).scalar_one()
        quarantined = MailRow.state == MailState.QUARANTINED.value
        quarantine = session.execute(
            select(func.count()).select_from(MailRow).where(quarantined)
        ).scalar_one()
        for_bugs = session.execute(
            select(func.count())
            .select_from(MailRow)
            .where(quarantined, _BUG_REASONS, MailRow.received_at >= now - recent)
        ).scalar_one()
        met = dict(
            session.execute(
                select(TicketRow.callback_met, func.count())
                .where(TicketRow.callback_met.is_not(None))
                .group_by(TicketRow.callback_met)
            ).all()
        )
        breached = session.execute(
            select(TicketRow.number)
            .where(
                TicketRow.status.in_(_OPEN),
                TicketRow.first_call_at.is_(None),
                TicketRow.callback_due_at < now,
            )
            .order_by(TicketRow.callback_due_at, TicketRow.id)
        ).scalars()
        breached_open = tuple(breached)
    return DeskFigures(
        tickets=tickets,
        open_by_urgency=by_urgency,
        mails=count_by_fate(store),
        outbox_pending=outbox[OutboxState.PENDING],
        outbox_failed=outbox[OutboxState.FAILED],
        oldest_pending_at=oldest,
        quarantine=int(quarantine),
        quarantined_for_bugs=int(for_bugs),
        callback_met=int(met.get(True, 0)),
        callback_missed=int(met.get(False, 0)),
        breached_open=breached_open,
    )
