"""The other statements a transaction runs, built once: a ticket's history
(events, attachments), the answer caps, counters and staff. Statements only.
"""

from __future__ import annotations

from typing import Final, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from maild.adapters.database.models import (
    AttachmentRow,
    AutoAnswerRow,
    CounterRow,
    EventRow,
    StaffRow,
)
from maild.domain import EventKind

_AUTO_ANSWERS = cast(Table, AutoAnswerRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_COUNTERS = cast(Table, CounterRow.__table__)
_STAFF = cast(Table, StaffRow.__table__)
_DIALECTS = (("postgresql", postgresql), ("sqlite", sqlite))

ADD_EVENT: Final = insert(_EVENTS).returning(_EVENTS.c.id)
OPENING_MESSAGE_ID: Final = (
    select(_EVENTS.c.message_id)
    .where(
        _EVENTS.c.ticket_id == bindparam("ticket_id"),
        _EVENTS.c.kind == EventKind.CREATED.value,
    )
    .limit(1)
)
ADD_ATTACHMENT: Final = insert(cast(Table, AttachmentRow.__table__))

ADD_AUTO_ANSWER: Final = insert(_AUTO_ANSWERS)
_ANSWERED_SINCE: Final = select(
    func.count().filter(_AUTO_ANSWERS.c.at >= bindparam("since_0")),
    func.count().filter(_AUTO_ANSWERS.c.at >= bindparam("since_1")),
).where(_AUTO_ANSWERS.c.at >= bindparam("since_0"), _AUTO_ANSWERS.c.is_held.is_(False))
ANSWERS_TO: Final = _ANSWERED_SINCE.where(
    _AUTO_ANSWERS.c.address == bindparam("address")
)
ANSWERS_ON: Final = _ANSWERED_SINCE.where(
    _AUTO_ANSWERS.c.ticket_id == bindparam("ticket_id")
)
WAS_ANSWERED: Final = (
    select(_AUTO_ANSWERS.c.id)
    .where(
        _AUTO_ANSWERS.c.address == bindparam("address"),
        _AUTO_ANSWERS.c.at >= bindparam("since"),
        _AUTO_ANSWERS.c.template == bindparam("template"),
    )
    .limit(1)
)

STAFF_ROLES: Final = select(_STAFF.c.address, _STAFF.c.role)

# Counters by upsert, one statement for each database (keyed by dialect name).
NEXT_VALUE: Final = {
    name: dialect.insert(_COUNTERS)
    .values(name=bindparam("counter"), value=1)
    .on_conflict_do_update(
        index_elements=[_COUNTERS.c.name], set_={"value": _COUNTERS.c.value + 1}
    )
    .returning(_COUNTERS.c.value)
    for name, dialect in _DIALECTS
}
DIGEST_COUNTER: Final = "digest"
# The digests of a day are claimed once: the row is written by a later day only.
CLAIM_DAY: Final = {
    name: dialect.insert(_COUNTERS)
    .values(name=DIGEST_COUNTER, value=bindparam("day"))
    .on_conflict_do_update(
        index_elements=[_COUNTERS.c.name],
        set_={"value": bindparam("day")},
        where=_COUNTERS.c.value < bindparam("day"),
    )
    .returning(_COUNTERS.c.value)
    for name, dialect in _DIALECTS
}
