"""Several instances on one PostgreSQL: leases, fences, the outbox taken once,
a mail's bytes registered once, and migrations that wait for older instances.

Each "instance" here is a Store or an Instances on an engine of its own, as
two `maild run` on two machines would have.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from maild.adapters.database import mails, outbox_rows
from maild.adapters.database.blobs import BlobStore
from maild.adapters.database.engine import HEAD_REVISION, make_engine, upgrade
from maild.adapters.database.instances import (
    Instances,
    check_fence,
    upgrade_when_safe,
)
from maild.adapters.database.models import MailRow
from maild.adapters.database.store import Store
from maild.domain import MailOrigin, OutboundMail
from maild.errors import InstanceConflict, LeaseLost
from tests.support.daemon import run_maild, write_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def url(fresh_postgres_db: str) -> str:
    upgrade(fresh_postgres_db)
    return fresh_postgres_db


@pytest.fixture
def engines(url: str) -> Iterator[Callable[[], Engine]]:
    """Engines on the test's database, one per instance; disposed at the end."""
    made: list[Engine] = []

    def engine() -> Engine:
        made.append(make_engine(url))
        return made[-1]

    yield engine
    for each in made:
        each.dispose()


@pytest.fixture
def stores(url: str, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two instances' stores on one database."""
    first = Store(make_engine(url), BlobStore(tmp_path / "blobs"))
    second = Store(make_engine(url), BlobStore(tmp_path / "blobs"))
    yield first, second
    first.close()
    second.close()


def test_a_role_is_held_by_one_instance_and_taken_over_when_its_lease_expires(
    engines: Callable[[], Engine],
) -> None:
    one = Instances(engines(), 1, _clock)
    two = Instances(engines(), 1, _clock)
    held = one.take("imap", "one")
    assert held is not None
    assert two.take("imap", "two") is None  # still one's
    assert one.renew(held)
    # one stops renewing (killed, paused): two takes the role once it expires
    taken = wait_until(lambda: two.take("imap", "two"), 10, "the takeover")
    assert taken is not None
    assert taken.epoch == held.epoch + 1
    assert not one.renew(held)  # one finds out, and gives it up


def test_an_instance_that_lost_its_lease_writes_nothing(
    stores: tuple[Store, Store],
) -> None:
    paused, standby = stores
    one = Instances(paused.engine, 1, _clock)
    two = Instances(standby.engine, 1, _clock)
    stale = one.take("imap", "one")
    assert stale is not None
    with paused.fenced(stale):  # while it holds the lease, it writes
        paused.register_mail(MailOrigin("smtp"), "a" * 64, b"first", NOW)
    wait_until(lambda: two.take("imap", "two"), 10, "the takeover")
    # resumed: the instance does not know yet that it lost the role
    with paused.fenced(stale), pytest.raises(LeaseLost, match="imap"):
        paused.register_mail(MailOrigin("smtp"), "b" * 64, b"second", NOW)
    with standby.reading() as session:
        assert session.scalars(select(MailRow.content_hash)).all() == ["a" * 64]


def test_a_write_whose_lease_ran_out_before_its_commit_is_rolled_back(
    stores: tuple[Store, Store],
) -> None:
    holder, standby = stores
    one = Instances(holder.engine, 1, _clock)
    two = Instances(standby.engine, 1, _clock)
    fence = one.take("sla", "one")
    assert fence is not None

    def write_while_paused() -> None:
        with holder.fenced(fence), holder.transaction() as tx:
            tx.next_sequence("I261201")  # begun under the lease, paused meanwhile
            wait_until(lambda: two.take("sla", "two"), 10, "the takeover")

    with pytest.raises(LeaseLost, match="sla"):
        write_while_paused()
    with standby.transaction() as tx:
        assert tx.next_sequence("I261201") == 1  # the first write never was


def test_a_holder_paused_between_its_lease_check_and_its_commit_loses_the_role(
    url: str, engines: Callable[[], Engine]
) -> None:
    fenced = make_engine(url, idle_in_transaction=1)  # as the daemon's store
    one = Instances(fenced, 1, _clock)
    two = Instances(engines(), 1, _clock)
    fence = one.take("imap", "one")
    assert fence is not None
    try:
        with Session(fenced) as paused:
            check_fence(paused, fence)  # the share lock on its lease row, then:
            # SIGSTOP here: PostgreSQL ends the idle session, the lock goes
            taken = wait_until(lambda: two.take("imap", "two"), 10, "the takeover")
            assert taken.epoch == fence.epoch + 1
            with pytest.raises(OperationalError):
                paused.commit()  # resumed: its transaction was rolled back
    finally:
        fenced.dispose()


def test_two_senders_never_take_the_same_mail(stores: tuple[Store, Store]) -> None:
    first, second = stores
    with first.transaction() as tx:
        for n in range(6):
            mail = OutboundMail(
                message_id=f"out{n}@example.com",
                to=("marie@example.com",),
                subject="s",
                text="t",
                html="",
            )
            tx.enqueue(mail, b"data", None, NOW)
    a = first.take_due(NOW, 4)
    b = second.take_due(NOW, 4)
    assert [d.message_id for d in a] == [f"out{n}@example.com" for n in range(4)]
    assert [d.message_id for d in b] == ["out4@example.com", "out5@example.com"]
    assert second.take_due(NOW, 4) == []
    # a sender that died with mails taken: the others send them after the claim
    first.mark_sent([d.id for d in a], NOW)
    later = second.take_due(NOW + outbox_rows.CLAIM, 10)
    assert [d.message_id for d in later] == ["out4@example.com", "out5@example.com"]


def test_the_same_bytes_taken_in_by_two_instances_at_once_are_one_mail(
    url: str, engines: Callable[[], Engine]
) -> None:
    engine, other_engine = engines(), engines()
    origin = MailOrigin("smtp")
    with Session(engine) as first:
        mine = mails.register(first, origin, "c" * 64, 5, "blob", NOW)
        theirs: list[int] = []

        def other() -> None:
            with Session(other_engine) as second, second.begin():
                record = mails.register(second, origin, "c" * 64, 5, "blob", NOW)
                theirs.append(record.id)

        thread = threading.Thread(target=other)
        thread.start()
        wait_until(lambda: _waiting_on_a_lock(engine), 10, "the second insert to wait")
        first.commit()
    thread.join(10)
    assert theirs == [mine.id]
    with Session(engine) as session:
        assert session.scalars(select(MailRow.attempts)).all() == [2]


def test_status_lists_the_instances_alive_with_their_roles(
    engines: Callable[[], Engine],
) -> None:
    instances = Instances(engines(), 5, _clock)
    instances.join("one", "host-a", 101, HEAD_REVISION, ("sender", "smtp_intake"))
    instances.join("two", "host-b", 202, HEAD_REVISION, ("sender",))
    assert instances.take("imap", "two") is not None
    assert instances.take("sla", "two") is not None
    instances.join("gone", "host-c", 303, HEAD_REVISION, ("sender",))
    instances.leave("gone")
    alive = {i.id: i for i in instances.alive()}
    assert sorted(alive) == ["one", "two"]
    assert alive["one"].roles == ("sender", "smtp_intake")
    assert alive["two"].roles == ("imap", "sla", "sender")
    assert set(alive["two"].held_since) == {"imap", "sla"}
    assert (alive["two"].host, alive["two"].pid) == ("host-b", 202)


def test_a_migration_waits_for_the_older_instances_to_stop(
    url: str, engines: Callable[[], Engine]
) -> None:
    instances = Instances(engines(), 30, _clock)
    instances.join("old", "host-a", 4242, "0005", ("sender",))
    instances.join("new", "host-b", 99, HEAD_REVISION, ("sender",))
    with pytest.raises(InstanceConflict, match="old on host-a \\(pid 4242"):
        upgrade_when_safe(url, 30)
    instances.leave("old")
    upgrade_when_safe(url, 30)  # the new one knows this schema


def _expired(engine: Engine) -> bool:
    with engine.connect() as db:
        return bool(
            db.execute(
                text("SELECT bool_and(expires_at <= clock_timestamp()) FROM leases")
            ).scalar_one()
        )


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as db:
        waiting = db.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        return bool(waiting.scalar_one())


def test_a_shared_database_not_upgraded_is_named_with_the_fix(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    config, _ = write_config(tmp_path, sink_port=None, database_url=fresh_postgres_db)
    for command in (("tickets", "list", "--json"), ("run",)):
        done = run_maild(config, *command)
        assert done.returncode == 1, command
        assert "maild db upgrade" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
