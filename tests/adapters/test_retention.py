"""Retention (issue 20): the purge on a real SQLite store with an advanced clock.

An expired ticket keeps its facts and loses its raw mails, attachments and
their blob files; a blob another ticket still names stays; quarantined
mails lose their bytes after `quarantine_days`; a purge cut between batches
and run again ends where one uninterrupted run ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from maild.adapters.database.models import AttachmentRow, BlobSweepRow, MailRow
from maild.adapters.database.report import stats
from maild.app.purge import Purge
from maild.core.retention import Purged
from maild.runtime.retention import purge
from tests.support.desk import MARIE, PARIS, Desk
from tests.support.mails import helpdesk_mail

ALICE = "alice@example.com"
PAUL = "paul@example.com"
START = datetime(2025, 1, 6, 9, 0, tzinfo=PARIS)  # a Monday, in business hours
YEAR_LATER = timedelta(days=366)
SECRET = b"PAYSLIP-OF-MARIE-0001 " * 50  # sent by mistake: must go
SHARED = b"COMPANY-VPN-GUIDE " * 50  # attached to a live ticket as well


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path, now=START)
    yield handle
    handle.close()


def blob_file(desk: Desk, sha256: str) -> Path:
    return desk.store.blobs.path_for(sha256)


def closed_helpdesk_mail(desk: Desk) -> str:
    """Marie's ticket, with the payslip and the shared guide, accepted (closed)."""
    desk.handle(
        helpdesk_mail(MARIE, "Pay slip", "Here it is.", ("pay.pdf", SECRET),
                   ("vpn.pdf", SHARED))
    )  # fmt: skip
    number = str(desk.tickets()[-1]["number"])
    desk.mail(ALICE, f"Re: [HD {number}]", "CLAIM\nRESOLVED sent to HR")
    desk.mail(MARIE, f"Re: [HD {number}]", "ACCEPT")
    assert desk.ticket(number)["status"] == "closed"
    return number


def live_with_shared(desk: Desk) -> str:
    desk.handle(helpdesk_mail(PAUL, "VPN", "Guide attached.", ("vpn.pdf", SHARED)))
    return str(desk.tickets()[-1]["number"])


def copies_naming(directory: Path, number: str) -> list[Path]:
    """The .eml copies of sent mail whose bytes name a ticket number."""
    return [p for p in directory.glob("*.eml") if number.encode() in p.read_bytes()]


def files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()}


def test_an_expired_ticket_keeps_its_facts_and_loses_its_mails(desk: Desk) -> None:
    number = closed_helpdesk_mail(desk)
    live = live_with_shared(desk)
    desk.sender.deliver_due()
    before = desk.ticket(number)
    raw_blobs = [m.blob_sha256 for m in desk.mails() if m.ticket_id is not None]
    assert all(blob_file(desk, b).is_file() for b in raw_blobs)

    kept = desk.settings.eml_dir  # no relay: what was sent is kept as .eml files
    assert copies_naming(kept, number)
    assert copies_naming(kept, live)

    desk.clock.now += YEAR_LATER
    done = purge(desk.settings, desk.store, desk.clock.now)

    assert done == Purged(mails=3, attachments=2, blobs=4)  # 3 raw + the payslip
    assert copies_naming(kept, number) == []  # what was sent on it went too
    assert copies_naming(kept, live)  # the live ticket's stay
    after = desk.ticket(number)
    for key in (
        "number",
        "type",
        "status",
        "created_at",
        "closed_at",
        "close_reason",
        "callback_due_at",
        "callback_met",
        "rating",
    ):
        assert after[key] == before[key], key
    kinds = [e["kind"] for e in after["events"]]
    assert kinds == [e["kind"] for e in before["events"]] + ["purged"]
    assert after["attachments"] == []
    assert "PAYSLIP" not in after["events"][-1]["text"]
    mails = {m.id: m for m in desk.mails()}
    on_expired = [m for m in mails.values() if m.ticket_id == after_id(desk, number)]
    assert len(on_expired) == 3
    assert all(m.blob_sha256 == "" for m in on_expired)
    blobs_dir = desk.store.blobs.directory
    contents = b"".join(p.read_bytes() for p in files_under(blobs_dir))
    assert b"PAYSLIP-OF-MARIE" not in contents
    assert b"Here it is." not in contents
    assert blob_file(desk, hashlib.sha256(SHARED).hexdigest()).is_file()
    assert (
        desk.ticket(live)["attachments"][0]["sha256"]
        == hashlib.sha256(SHARED).hexdigest()
    )
    assert purge(desk.settings, desk.store, desk.clock.now) == Purged()  # done once


def after_id(desk: Desk, number: str) -> int:
    from maild.adapters.database.models import TicketRow

    with desk.store.reading() as session:
        return int(
            session.scalars(
                select(TicketRow.id).where(TicketRow.number == number)
            ).one()
        )


def test_nothing_is_due_before_the_period(desk: Desk) -> None:
    closed_helpdesk_mail(desk)
    desk.clock.now += timedelta(days=364)
    assert purge(desk.settings, desk.store, desk.clock.now) == Purged()


def test_a_dry_run_counts_and_removes_nothing(desk: Desk) -> None:
    number = closed_helpdesk_mail(desk)
    live_with_shared(desk)
    desk.clock.now += YEAR_LATER
    files = files_under(desk.store.blobs.directory)

    counted = purge(desk.settings, desk.store, desk.clock.now, dry_run=True)

    assert counted == Purged(mails=3, attachments=2, blobs=4)
    assert files_under(desk.store.blobs.directory) == files
    assert len(desk.ticket(number)["attachments"]) == 2
    assert purge(desk.settings, desk.store, desk.clock.now) == counted


def test_a_dry_run_in_batches_counts_a_blob_shared_across_them(desk: Desk) -> None:
    for n in (1, 2):  # two expired tickets with the same file, one a batch
        desk.handle(helpdesk_mail(MARIE, f"Panne {n}", f"body {n}", ("g.pdf", SECRET)))
        number = str(desk.tickets()[-1]["number"])
        desk.mail(MARIE, f"Re: [HD {number}]", "CANCEL")
    live_with_shared(desk)  # and a live ticket: its file stays
    desk.clock.now += YEAR_LATER
    purge_in_batches = Purge(desk.settings.retention.policy, desk.store, batch=1)

    counted = purge_in_batches.run(desk.clock.now, dry_run=True)
    done = purge_in_batches.run(desk.clock.now)

    assert counted == done
    assert done.blobs == 5  # 4 raw mails and the shared file, not the guide
    assert not blob_file(desk, hashlib.sha256(SECRET).hexdigest()).exists()


def test_quarantined_mail_loses_its_bytes_and_keeps_its_record(desk: Desk) -> None:
    desk.mail("spam@evil.example.org", "Win big", "click here")
    mail = desk.mails()[-1]
    assert mail.state == "quarantined"
    quarantine = stats(desk.store)["quarantine"]
    desk.clock.now += timedelta(days=29)
    assert purge(desk.settings, desk.store, desk.clock.now) == Purged()

    desk.clock.now += timedelta(days=2)
    done = purge(desk.settings, desk.store, desk.clock.now)

    assert done == Purged(mails=1, blobs=1)
    kept = desk.mails()[-1]
    assert (kept.id, kept.state, kept.reason) == (mail.id, mail.state, mail.reason)
    assert not blob_file(desk, mail.blob_sha256).exists()
    assert stats(desk.store)["quarantine"] == quarantine


def test_a_mail_retried_from_the_quarantine_while_the_purge_runs_keeps_its_bytes(
    desk: Desk,
) -> None:
    desk.mail("spam@evil.example.org", "Win big", "click here")
    mail = desk.mails()[-1]
    desk.clock.now += timedelta(days=31)
    store = desk.store
    listed = store.mails_due_for_purge

    def listed_then_retried(before: datetime, after: int, limit: int) -> list[int]:
        due = listed(before, after, limit)
        if mail.id in due:  # the operator's `maild quarantine retry`, meanwhile
            store.reopen_quarantined(mail.id)
        return due

    store.mails_due_for_purge = listed_then_retried  # type: ignore[method-assign]
    try:
        done = Purge(desk.settings.retention.policy, store).run(desk.clock.now)
    finally:
        del store.mails_due_for_purge
    assert done == Purged()
    assert blob_file(desk, mail.blob_sha256).is_file()
    assert desk.mails()[-1].blob_sha256 == mail.blob_sha256


class Interrupted(Exception):
    pass


def crash(after: int) -> Callable[[], None]:
    """A between-batches call that interrupts the purge after a few batches."""
    calls = iter(range(after))

    def between() -> None:
        if next(calls, None) is None:
            raise Interrupted

    return between


def state_of(desk: Desk) -> tuple[object, ...]:
    """What a purge leaves: bytes named, attachments, files, histories, to sweep."""
    with desk.store.reading() as session:
        mails = sorted(session.execute(select(MailRow.id, MailRow.blob_sha256)))
        attachments = sorted(session.scalars(select(AttachmentRow.sha256)))
        sweep = sorted(session.scalars(select(BlobSweepRow.sha256)))
    files = sorted(p.name for p in files_under(desk.store.blobs.directory))
    kinds = [
        [(e["kind"], e["text"] if e["kind"] == "purged" else "") for e in t["events"]]
        for t in (desk.ticket(n["number"]) for n in desk.tickets())
    ]
    return mails, attachments, sweep, files, kinds


def many_closed(desk: Desk, count: int) -> None:
    for i in range(count):
        desk.handle(
            helpdesk_mail(MARIE, f"Ticket {i}", f"body {i}", (f"f{i}", b"%d" % i * 99),
                       ("vpn.pdf", SHARED))
        )  # fmt: skip
        number = str(desk.tickets()[-1]["number"])
        desk.mail(MARIE, f"Re: [HD {number}]", "CANCEL")
    live_with_shared(desk)


def test_a_purge_cut_between_batches_ends_as_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    ends = []
    for cut in (False, True):
        (tmp_path / str(cut)).mkdir()
        desk = Desk(tmp_path / str(cut), now=START)
        try:
            many_closed(desk, 5)
            desk.clock.now += YEAR_LATER
            policy = desk.settings.retention.policy
            if cut:
                with pytest.raises(Interrupted):
                    Purge(policy, desk.store, batch=1, between_batches=crash(3)).run(
                        desk.clock.now
                    )
                assert 0 < len(desk.event_rows("purged")) < 5
            done = Purge(policy, desk.store, batch=2).run(desk.clock.now)
            assert done.mails > 0
            ends.append(state_of(desk))
        finally:
            desk.close()
    assert ends[0] == ends[1]


def test_files_left_by_a_crash_before_the_sweep_go_at_the_next_run(
    desk: Desk,
) -> None:
    closed_helpdesk_mail(desk)
    desk.clock.now += YEAR_LATER
    policy = desk.settings.retention.policy

    def killed(limit: int) -> tuple[int, int]:
        raise Interrupted  # killed after the batches committed, before the sweep

    desk.store.sweep_blobs = killed  # type: ignore[method-assign]
    try:
        with pytest.raises(Interrupted):
            Purge(policy, desk.store).run(desk.clock.now)
    finally:
        del desk.store.sweep_blobs
    secret = blob_file(desk, hashlib.sha256(SECRET).hexdigest())
    assert secret.is_file()  # an orphan, noted in blob_sweep

    done = purge(desk.settings, desk.store, desk.clock.now)

    assert (done.mails, done.attachments, done.blobs) == (0, 0, 5)  # 3 raw, 2 files
    assert not secret.exists()
