"""Several instances on one database: heartbeats, role leases, fences. I/O.

Statements only, no decisions: the daemon's RoleKeeper (maild/runtime/roles.py)
says when to beat, take, renew and give back. On PostgreSQL every moment is
the database's own clock (`clock_timestamp()`), so instances whose clocks
disagree still agree on who holds a role; on SQLite (one instance, the lock
file keeps it so) the injected clock stands in for it. The design and what
each guarantee rests on: docs/DECISIONS.md, "Several instances".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Interval,
    Table,
    delete,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from maild.adapters.database.engine import (
    HEAD_REVISION,
    WRITE_OPTION,
    make_engine,
    upgrade,
)
from maild.adapters.database.models import InstanceRow, LeaseRow, Timestamp
from maild.config import Settings
from maild.errors import InstanceConflict, LeaseLost, StoreUnavailable

LEASED_ROLES: Final = ("imap", "sla")  # one instance at a time
EVERYWHERE_ROLES: Final = ("sender", "smtp_intake")  # every instance that has them
_FORGOTTEN_AFTER: Final = timedelta(days=1)  # rows of instances long gone
_LOCK_WAIT: Final = "1s"  # what a beat, take or renew waits for a row lock

_INSTANCES = cast(Table, InstanceRow.__table__)
_LEASES = cast(Table, LeaseRow.__table__)


@dataclass(frozen=True, slots=True)
class Fence:
    """A role held: the lease row that every write of the role checks."""

    role: str
    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """An instance seen within the lease time, and the roles it runs."""

    id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    schema_revision: str
    roles: tuple[str, ...]
    held_since: dict[str, datetime] = field(default_factory=dict)


def check_fence(session: Session, fence: Fence) -> None:
    """Lock the lease row until this transaction ends; LeaseLost if not ours.

    Run just before the commit. FOR SHARE: a takeover (an UPDATE of that
    row) waits for the commit, so what the transaction wrote was committed
    under the lease, or not at all.
    """
    held = session.execute(
        select(_LEASES.c.epoch)
        .where(
            _LEASES.c.role == fence.role,
            _LEASES.c.holder == fence.holder,
            _LEASES.c.epoch == fence.epoch,
            _LEASES.c.expires_at > func.clock_timestamp(),
        )
        .with_for_update(read=True)
    ).first()
    if held is None:
        raise LeaseLost(f"the {fence.role} lease (epoch {fence.epoch}) is lost")


class Instances:
    """The instances table and the leases table, a short transaction a call."""

    def __init__(
        self, engine: Engine, lease_seconds: float, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        # SQLite: BEGIN IMMEDIATE, as every writer (engine.py)
        self._writing = engine.execution_options(**{WRITE_OPTION: True})
        self.lease = timedelta(seconds=lease_seconds)
        self._clock = clock
        self._is_postgresql = engine.dialect.name == "postgresql"

    # Instances

    def join(
        self, instance_id: str, host: str, pid: int, revision: str, roles: Iterable[str]
    ) -> None:
        """Write this instance's row (seen now); forget instances long gone."""
        now = self._at()
        with self._begin() as db:
            db.execute(delete(_INSTANCES).where(_INSTANCES.c.id == instance_id))
            db.execute(
                delete(_INSTANCES).where(
                    _INSTANCES.c.seen_at < self._at(-_FORGOTTEN_AFTER)
                )
            )
            db.execute(
                _INSTANCES.insert().values(
                    id=instance_id,
                    host=host[:255],
                    pid=pid,
                    started_at=now,
                    seen_at=now,
                    schema_revision=revision,
                    roles=",".join(roles),
                )
            )

    def beat(self, instance_id: str) -> bool:
        """Say this instance is alive now; False if its row was gone."""
        with self._begin() as db:
            done = db.execute(
                update(_INSTANCES)
                .where(_INSTANCES.c.id == instance_id)
                .values(seen_at=self._at())
            )
            return cast(CursorResult[Any], done).rowcount == 1

    def leave(self, instance_id: str) -> None:
        """Remove this instance and give back every lease it holds, at once."""
        with self._begin() as db:
            db.execute(
                update(_LEASES)
                .where(_LEASES.c.holder == instance_id)
                .values(expires_at=self._at())
            )
            db.execute(delete(_INSTANCES).where(_INSTANCES.c.id == instance_id))

    def alive(self) -> list[InstanceStatus]:
        """The instances seen within the lease time, with the roles they run."""
        with self._begin() as db:
            now = db.execute(select(self._at())).scalar_one()
            rows = db.execute(
                select(_INSTANCES)
                .where(_INSTANCES.c.seen_at > now - self.lease)
                .order_by(_INSTANCES.c.started_at, _INSTANCES.c.id)
            ).all()
            leases = db.execute(
                select(_LEASES.c.role, _LEASES.c.holder, _LEASES.c.taken_at).where(
                    _LEASES.c.expires_at > now
                )
            ).all()
        held: dict[str, dict[str, datetime]] = {}
        for role, holder, taken_at in leases:
            held.setdefault(holder, {})[role] = taken_at
        return [
            InstanceStatus(
                id=row.id,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                seen_at=row.seen_at,
                schema_revision=row.schema_revision,
                roles=_roles(row.roles, held.get(row.id, {})),
                held_since=_since(row, held.get(row.id, {})),
            )
            for row in rows
        ]

    def older_alive(self, revision: str) -> list[InstanceStatus]:
        """The instances alive that know a schema older than revision."""
        return [i for i in self.alive() if i.schema_revision < revision]

    # Leases

    def take(self, role: str, holder: str) -> Fence | None:
        """Take a role if it is free or its lease expired; None if held by another.

        One statement: of several instances trying at once, one wins.
        """
        now, expires = self._at(), self._at(self.lease)
        insert = (postgresql if self._is_postgresql else sqlite).insert(_LEASES)
        stmt = (
            insert.values(
                role=role, holder=holder, epoch=1, taken_at=now, expires_at=expires
            )
            .on_conflict_do_update(
                index_elements=[_LEASES.c.role],
                set_={
                    "holder": insert.excluded.holder,
                    "epoch": _LEASES.c.epoch + 1,
                    "taken_at": insert.excluded.taken_at,
                    "expires_at": insert.excluded.expires_at,
                },
                where=_LEASES.c.expires_at <= now,
            )
            .returning(_LEASES.c.epoch)
        )
        with self._begin() as db:
            epoch = db.execute(stmt).scalar_one_or_none()
        return None if epoch is None else Fence(role, holder, int(epoch))

    def renew(self, fence: Fence) -> bool:
        """Extend a lease still held; False if it expired or passed to another."""
        with self._begin() as db:
            done = db.execute(
                update(_LEASES)
                .where(*_held(fence), _LEASES.c.expires_at > self._at())
                .values(expires_at=self._at(self.lease))
            )
            return cast(CursorResult[Any], done).rowcount == 1

    def release(self, fence: Fence) -> None:
        """Give a lease back now, so that a standby takes the role at once."""
        with self._begin() as db:
            db.execute(
                update(_LEASES).where(*_held(fence)).values(expires_at=self._at())
            )

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A short transaction; a database that is down raises StoreUnavailable."""
        try:
            with self._writing.begin() as db:
                if self._is_postgresql:  # a holder paused in its commit: next round
                    db.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_WAIT}'"))
                yield db
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(str(exc.orig).strip().split("\n")[0]) from exc

    def _at(self, offset: timedelta | None = None) -> ColumnElement[datetime]:
        """Now (plus offset) by the database's clock; SQLite's: the injected one."""
        if self._is_postgresql:
            now: ColumnElement[datetime] = func.clock_timestamp(type_=Timestamp)
            return now if offset is None else now + literal(offset, Interval())
        moment = self._clock() + (offset or timedelta())
        return literal(moment, Timestamp)


def _held(fence: Fence) -> tuple[ColumnElement[bool], ...]:
    return (
        _LEASES.c.role == fence.role,
        _LEASES.c.holder == fence.holder,
        _LEASES.c.epoch == fence.epoch,
    )


def _since(row: Any, leased: dict[str, datetime]) -> dict[str, datetime]:
    """Since when each leased role is held; SQLite's one instance: since it started."""
    alone = {r: row.started_at for r in row.roles.split(",") if r in LEASED_ROLES}
    return {**alone, **leased}


def _roles(everywhere: str, leased: dict[str, datetime]) -> tuple[str, ...]:
    """The roles an instance runs: those it holds a lease for, then the others."""
    order = (*LEASED_ROLES, *EVERYWHERE_ROLES)
    mine = {*leased, *(r for r in everywhere.split(",") if r)}
    return tuple(r for r in order if r in mine)


def status_report(settings: Settings) -> dict[str, list[dict[str, object]]]:
    """`maild status --json`: the instances alive, their roles and since when."""
    engine = make_engine(settings.database_url)
    try:
        if not inspect(engine).has_table("instances"):
            return {"instances": []}  # a schema from before several instances
        alive = Instances(engine, settings.lease_seconds, _wall_clock).alive()
    finally:
        engine.dispose()
    return {
        "instances": [
            {
                "id": i.id,
                "host": i.host,
                "pid": i.pid,
                "started_at": i.started_at.isoformat(),
                "seen_at": i.seen_at.isoformat(),
                "roles": list(i.roles),
                "held_since": {r: t.isoformat() for r, t in i.held_since.items()},
                "schema_revision": i.schema_revision,
            }
            for i in alive
        ]
    }


def upgrade_when_safe(url: str, lease_seconds: float) -> None:
    """Migrate to the newest schema, unless an instance alive knows an older one.

    Raises InstanceConflict naming it (id, host, pid): it would write to a
    schema it does not know. Stop it first; instances of the new version
    may run.
    """
    engine = make_engine(url)
    try:
        if inspect(engine).has_table("instances"):
            older = Instances(engine, lease_seconds, _wall_clock).older_alive(
                HEAD_REVISION
            )
            if older:
                names = ", ".join(
                    f"{i.id} on {i.host} (pid {i.pid}, schema {i.schema_revision})"
                    for i in older
                )
                raise InstanceConflict(
                    f"not migrating to schema {HEAD_REVISION}: instance(s) of an "
                    f"older maild still running: {names}; stop them first"
                )
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(str(exc.orig).strip().split("\n")[0]) from exc
    finally:
        engine.dispose()
    upgrade(url)


def _wall_clock() -> datetime:
    """SQLite's stand-in for the database's clock, for the commands."""
    return datetime.now(UTC)
