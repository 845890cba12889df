"""The role keeper of each instance (runtime/roles.py) on a real PostgreSQL:
one holder per leased role, a standby that takes over when the holder goes,
a holder that gives its role up when it finds its lease gone, and the work of
a role run only while it is held. A lease of 1 s keeps it quick."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import make_engine, upgrade
from maild.adapters.database.instances import Instances
from maild.adapters.database.store import Store
from maild.runtime.roles import RoleKeeper
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres

LEASE = 1.0


def _clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def keepers(
    fresh_postgres_db: str, tmp_path: Path
) -> Iterator[Callable[[], RoleKeeper]]:
    """Start role keepers, each with a store of its own; all stopped at the end."""
    upgrade(fresh_postgres_db)
    started: list[RoleKeeper] = []

    def start() -> RoleKeeper:
        store = Store(make_engine(fresh_postgres_db), BlobStore(tmp_path / "blobs"))
        instances = Instances(store.engine, LEASE, _clock)
        keeper = RoleKeeper(
            store, instances, ("imap", "sla"), ("sender",), is_shared=True
        )
        keeper.start()
        started.append(keeper)
        return keeper

    yield start
    for keeper in started:
        keeper.stop()
        keeper.store.close()


def test_the_first_instance_holds_the_roles_and_a_standby_takes_them_when_it_stops(
    keepers: Callable[[], RoleKeeper],
) -> None:
    first, standby = keepers(), keepers()
    assert first.roles() == {"imap": True, "sla": True, "sender": True}
    assert standby.roles() == {"imap": False, "sla": False, "sender": True}
    first.stop()  # gives its leases back at once
    wait_until(lambda: standby.holds("imap") and standby.holds("sla"), 15, "takeover")
    assert not first.holds("imap")


def test_a_holder_that_finds_its_lease_taken_gives_the_role_up(
    keepers: Callable[[], RoleKeeper], caplog: pytest.LogCaptureFixture
) -> None:
    holder = keepers()
    ended = threading.Event()
    work = threading.Thread(
        target=holder.run_role, args=("imap", lambda e: (e.wait(10), ended.set()),
                                      threading.Event()),
        daemon=True,
    )  # fmt: skip
    work.start()
    # another instance took the role while this one was paused
    with holder.store.engine.begin() as db:
        db.execute(text("UPDATE leases SET holder = 'other', epoch = epoch + 1"
                        " WHERE role = 'imap'"))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="maild.runtime.roles"):
        wait_until(ended.is_set, 15, "the role's work told to end")
    assert not holder.holds("imap")
    assert holder.holds("sla")  # its other lease is still its own
    assert "role imap given up" in caplog.text


def test_a_roles_work_runs_only_where_the_role_is_held(
    keepers: Callable[[], RoleKeeper],
) -> None:
    holder, standby = keepers(), keepers()
    assert holder.as_holder("sla", lambda: 7) == 7
    assert standby.as_holder("sla", lambda: 7) == 0
    holder.end_tenures()  # stopping: the roles finish what they hold in hand
    assert holder.as_holder("sla", lambda: 7) == 0
