"""The outbox queue's statements: queue, pick the due, mark sent, deferred, failed.

Core statements on the table, built once: the ORM's entity loading and
session synchronisation cost the sender's loop more than the SMTP
conversation did. The states are `OutboxState` values at this edge; the
column keeps their strings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, cast

from sqlalchemy import Table, bindparam, func, insert, select, update

from maild.adapters.database.models import OutboxRow, TicketRow
from maild.domain import OutboxState

ERROR_CHARS: Final = 2000  # of an error kept on a row
OUTBOX = cast(Table, OutboxRow.__table__)
_C = OUTBOX.c
_TICKETS = cast(Table, TicketRow.__table__)
_PENDING = OutboxState.PENDING.value

ADD: Final = insert(OUTBOX)
DUE: Final = (  # with its ticket's number, for the sender's log line
    select(_C.id, _C.message_id, _C.recipients, _C.data, _C.attempts, _TICKETS.c.number)
    .select_from(OUTBOX.outerjoin(_TICKETS, _TICKETS.c.id == _C.ticket_id))
    .where(_C.state == _PENDING, _C.next_attempt_at <= bindparam("now"))
    .order_by(_C.id)
    .limit(bindparam("limit"))
)
# PostgreSQL, several senders: the due rows are taken for CLAIM (their next
# attempt moved past it) by one statement that skips the rows another sender
# is taking; a sender that dies before sending leaves them to the others then.
# A sender's round stops sending before (outbox.ROUND_SECONDS).
CLAIM: Final = timedelta(seconds=60)
CLAIM_DUE: Final = (
    update(OUTBOX)
    .where(
        _C.id.in_(
            select(_C.id)
            .where(_C.state == _PENDING, _C.next_attempt_at <= bindparam("now"))
            .order_by(_C.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(next_attempt_at=bindparam("until"))
    .returning(
        _C.id,
        _C.message_id,
        _C.recipients,
        _C.data,
        _C.attempts,
        select(_TICKETS.c.number)
        .where(_TICKETS.c.id == _C.ticket_id)
        .scalar_subquery(),
    )
)
MARK_SENT: Final = (
    update(OUTBOX)
    .where(_C.id.in_(bindparam("ids", expanding=True)), _C.state == _PENDING)
    .values(
        state=OutboxState.SENT.value,
        sent_at=bindparam("now"),
        attempts=_C.attempts + 1,
        last_error="",
    )
)
DEFER: Final = (
    update(OUTBOX)
    .where(_C.id == bindparam("outbox_id"))
    .values(
        attempts=_C.attempts + 1,
        last_error=bindparam("error"),
        next_attempt_at=bindparam("next_attempt_at"),
    )
)
MARK_FAILED: Final = (
    update(OUTBOX)
    .where(_C.id == bindparam("outbox_id"))
    .values(
        state=OutboxState.FAILED.value,
        attempts=_C.attempts + 1,
        last_error=bindparam("error"),
    )
    .returning(_C.message_id, _C.ticket_id, _C.recipients, _C.subject, _C.audience)
)
BY_MESSAGE_IDS: Final = select(_C.id, _C.message_id).where(
    _C.message_id.in_(bindparam("message_ids", expanding=True))
)
MARK_BOUNCED: Final = (
    update(OUTBOX)
    .where(_C.id == bindparam("outbox_id"))
    .values(state=OutboxState.FAILED.value, last_error=bindparam("error"))
)
COUNTS: Final = select(_C.state, func.count()).group_by(_C.state)
