"""Read models for the command line: tickets and statistics as JSON-ready data.

I/O (database reads). The shapes are SPEC's command-line contract: keys are
added as features land, never renamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from maild.adapters.database.models import (
    AttachmentRow,
    EventRow,
    MailRow,
    TicketRow,
    WatcherRow,
)
from maild.adapters.database.store import (
    Store,
    attachments_of,
    events_of,
    watchers_of,
)
from maild.adapters.outgoing.outbox import outbox_counts
from maild.domain import EventKind, MailState, TicketState, Urgency

Json = dict[str, Any]
_IN_CHUNK = 500  # ticket ids per IN (...): under every database's parameter limit


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def ticket_json(
    row: TicketRow,
    watchers: Sequence[WatcherRow],
    attachments: Sequence[AttachmentRow],
) -> Json:
    """One ticket as in `maild tickets list --json`."""
    return {
        "number": row.number,
        "type": row.ticket_type,
        "status": row.status,
        "subject": row.subject,
        "requester": {"name": row.requester_name, "address": row.requester_address},
        "beneficiary": {
            "name": row.beneficiary_name,
            "address": row.beneficiary_address,
        },
        "application": row.application,
        "urgency": row.urgency,
        "phone": row.phone,
        "owner": row.owner,
        "created_at": iso(row.created_at),
        "callback_due_at": iso(row.callback_due_at),
        "first_call_at": iso(row.first_call_at),
        "callback_met": row.callback_met,
        "resolved_at": iso(row.resolved_at),
        "closed_at": iso(row.closed_at),
        "close_reason": row.close_reason,
        "unverified_sender": row.unverified_sender or None,
        "rating": None
        if row.rating_score is None
        else {"score": row.rating_score, "comment": row.rating_comment or ""},
        "watchers": [w.address for w in watchers],
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.is_inline,
            }
            for a in attachments
        ],
    }


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """Which tickets `maild tickets list` shows: those that match every filter set.

    breached_by: tickets whose call-back was missed by then (the breach
    recorded, or the deadline past with no call yet). search: text found in
    the subject or the description, case ignored.
    """

    status: TicketState | None = None
    owner: str | None = None
    requester: str | None = None
    since: datetime | None = None
    breached_by: datetime | None = None
    search: str | None = None


def list_tickets(store: Store, query: TicketQuery | None = None) -> list[Json]:
    """The tickets, oldest first; watchers and attachments in a few queries."""
    with store.reading() as session:
        stmt = _filtered(
            session, select(TicketRow).order_by(TicketRow.id), query or TicketQuery()
        )
        rows = list(session.execute(stmt).scalars())
        ids = [row.id for row in rows]
        watchers = _by_ticket(session, WatcherRow, ids)
        attachments = _by_ticket(session, AttachmentRow, ids)
        return [
            ticket_json(row, watchers.get(row.id, []), attachments.get(row.id, []))
            for row in rows
        ]


def _filtered(
    session: Session, stmt: Select[TicketRow], query: TicketQuery
) -> Select[TicketRow]:
    if query.status is not None:
        stmt = stmt.where(TicketRow.status == query.status.value)
    if query.owner is not None:
        stmt = stmt.where(TicketRow.owner == query.owner.lower())
    if query.requester is not None:
        stmt = stmt.where(TicketRow.requester_address == query.requester.lower())
    if query.since is not None:
        stmt = stmt.where(TicketRow.created_at >= query.since)
    if query.breached_by is not None:
        stmt = stmt.where(
            or_(
                TicketRow.callback_met.is_(False),
                and_(
                    TicketRow.callback_met.is_(None),
                    TicketRow.first_call_at.is_(None),
                    TicketRow.callback_due_at < query.breached_by,
                ),
            )
        )
    if query.search:
        stmt = stmt.where(
            _contains(session, (TicketRow.subject, TicketRow.description), query.search)
        )
    return stmt


def _contains(
    session: Session,
    columns: Sequence[ColumnElement[str] | InstrumentedAttribute[str]],
    text: str,
) -> ColumnElement[bool]:
    """Whether one of the columns contains text, case ignored, Unicode and all.

    PostgreSQL's lower() folds every letter; SQLite's only the ASCII ones, so
    on SQLite the connection is given Python's casefold() as a function.
    """
    if session.get_bind().dialect.name == "sqlite":
        dbapi = cast(Any, session.connection().connection.dbapi_connection)
        dbapi.create_function("maild_casefold", 1, _casefold, deterministic=True)
        fold, term = func.maild_casefold, text.casefold()
    else:
        fold, term = func.lower, text.lower()
    return or_(*(fold(c).contains(term, autoescape=True) for c in columns))


def _casefold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None


Row = TypeVar("Row", WatcherRow, AttachmentRow)


def _by_ticket(
    session: Session, model: type[Row], ticket_ids: list[int]
) -> dict[int, list[Row]]:
    """Rows of model for these tickets, grouped by ticket, each group in id order."""
    grouped: dict[int, list[Row]] = {}
    for start in range(0, len(ticket_ids), _IN_CHUNK):
        chunk = ticket_ids[start : start + _IN_CHUNK]
        found = session.execute(
            select(model).where(model.ticket_id.in_(chunk)).order_by(model.id)
        ).scalars()
        for row in found:
            grouped.setdefault(row.ticket_id, []).append(row)
    return grouped


def show_ticket(store: Store, number: str) -> Json | None:
    with store.reading() as session:
        row = session.execute(
            select(TicketRow).where(TicketRow.number == number.upper())
        ).scalar_one_or_none()
        if row is None:
            return None
        data = ticket_json(
            row, watchers_of(session, row.id), attachments_of(session, row.id)
        )
        data["description"] = row.description
        data["events"] = [
            {
                "kind": e.kind,
                "actor": e.actor,
                "at": iso(e.at),
                "text": e.text,
                "message_id": e.message_id,
                "internal": e.is_internal,
            }
            for e in events_of(session, row.id)
        ]
        return data


def stats(store: Store) -> Json:
    """The figures of `maild stats --json`."""
    with store.reading() as session:
        backlog = {state.value: 0 for state in TicketState}
        for state, count in session.execute(
            select(TicketRow.status, func.count()).group_by(TicketRow.status)
        ):
            backlog[state] = int(count)
        quarantine = session.execute(
            select(func.count())
            .select_from(MailRow)
            .where(MailRow.state == MailState.QUARANTINED.value)
        ).scalar_one()
        ignored = session.execute(
            select(func.count())
            .select_from(MailRow)
            .where(MailRow.state == MailState.IGNORED.value)
        ).scalar_one()
        callback = _callback(session)
        rated = session.execute(
            select(func.count(TicketRow.rating_score), func.avg(TicketRow.rating_score))
        ).one()
        medians = _medians(session)
    outbox = outbox_counts(store)
    return {
        "backlog": backlog,
        "callback": callback,
        "rating": {
            "count": int(rated[0]),
            "mean": float(rated[1]) if rated[1] is not None else None,
        },
        "median_minutes": medians,
        "outbox": {"pending": outbox["pending"], "failed": outbox["failed"]},
        "quarantine": int(quarantine),
        "ignored": int(ignored),
    }


def _medians(session: Session) -> dict[str, float | None]:
    """Median minutes from opening to the first claim, first call, resolution."""
    claimed = (
        select(EventRow.ticket_id, func.min(EventRow.at).label("at"))
        .where(EventRow.kind.in_((EventKind.CLAIMED.value, EventKind.ASSIGNED.value)))
        .group_by(EventRow.ticket_id)
        .subquery()
    )
    spans = {
        "to_claim": select(TicketRow.created_at, claimed.c.at).join(
            claimed, claimed.c.ticket_id == TicketRow.id
        ),
        "to_first_call": select(TicketRow.created_at, TicketRow.first_call_at).where(
            TicketRow.first_call_at.is_not(None)
        ),
        "to_resolve": select(TicketRow.created_at, TicketRow.resolved_at).where(
            TicketRow.resolved_at.is_not(None)
        ),
    }
    result: dict[str, float | None] = {}
    for key, stmt in spans.items():
        minutes = [
            (end - start).total_seconds() / 60
            for start, end in session.execute(stmt)
            if end is not None
        ]
        result[key] = round(median(minutes), 1) if minutes else None
    return result


def _callback(session: Session) -> Json:
    result = {u.value: {"met": 0, "missed": 0, "pending": 0} for u in Urgency}
    for urgency, met, count in session.execute(
        select(TicketRow.urgency, TicketRow.callback_met, func.count()).group_by(
            TicketRow.urgency, TicketRow.callback_met
        )
    ):
        key = "pending" if met is None else "met" if met else "missed"
        result[urgency][key] += int(count)
    return result


def quarantine_list(store: Store) -> list[Json]:
    """The quarantined mails, oldest first, as in `maild quarantine list --json`."""
    with store.reading() as session:
        rows = session.execute(
            select(MailRow)
            .where(MailRow.state == MailState.QUARANTINED.value)
            .order_by(MailRow.id)
        ).scalars()
        return [
            {
                "id": row.id,
                "received_at": iso(row.received_at),
                "sender": row.sender,
                "message_id": row.message_id,
                "reason": row.reason,
                "source": row.source,
            }
            for row in rows
        ]
