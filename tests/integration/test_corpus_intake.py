"""Every real-world mail of the corpus ends as a ticket, ignored or quarantined.

Runs the daemon's own handler (parse worker, classification, store, outbox) in
this process over ../shared/corpus with accepted_domains = ["*"], then asks
`maild mails list --json` what became of each mail, and why.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maild.adapters.database.models import MailRow, OutboxRow, TicketRow
from maild.config import load_settings
from maild.core.limits import REFUSAL_REASONS
from maild.domain import FINAL_STATES, MailOrigin, MailState
from maild.runtime import daemon
from tests.support.corpus import corpus_files
from tests.support.daemon import run_maild, write_config

pytestmark = pytest.mark.integration


def test_corpus_mail_all_end_somewhere(corpus_dir: Path, tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, sink_port=None, domains='["*"]')
    parts = daemon.build(load_settings(config))
    handler = daemon.SafeHandler(parts, lambda: None)
    files = corpus_files(corpus_dir)
    answered_machine_mail = []
    start = time.monotonic()
    try:
        for path in files:
            before = _outbox_rows(parts)
            disposition = handler.handle(
                path.read_bytes(),
                MailOrigin(
                    source="replay", envelope_recipients=("helpdesk@example.com",)
                ),
            )
            if (
                _last_state(parts) is not MailState.DONE
                and _outbox_rows(parts) != before
                and not _is_refusal(parts)  # its sender is told why, by design
            ):
                answered_machine_mail.append((path, disposition))
        elapsed = time.monotonic() - start
        parts.outbox.deliver_due()
        with parts.store.reading() as session:
            mails = list(session.execute(select(MailRow)).scalars())
            tickets = session.execute(select(TicketRow)).scalars().all()
    finally:
        parts.close()

    states = Counter(MailState(m.state) for m in mails)
    reasons = Counter(
        m.reason.split(":")[0] for m in mails if m.state != MailState.DONE
    )
    print(
        f"\n{len(files)} corpus files in {elapsed:.1f}s: "
        f"{dict(states)}; reasons {dict(reasons)}"
    )
    assert all(MailState(m.state) in FINAL_STATES for m in mails)
    assert all(m.reason for m in mails)
    # Identical files in the corpus count once: one record per distinct mail.
    assert len(mails) == len({m.content_hash for m in mails})
    assert len(tickets) == states[MailState.DONE] - _replies(mails)
    assert not {m.reason for m in mails}.intersection({"internal error"})
    # Bounces, auto-replies, list mail and quarantined mail get no answer.
    assert answered_machine_mail == []
    assert states[MailState.IGNORED] > 100  # the bounce samples
    _every_robot_or_quarantined_mail_has_its_reason_listed(config, mails)


def _every_robot_or_quarantined_mail_has_its_reason_listed(
    config: Path, mails: list[MailRow]
) -> None:
    done = run_maild(config, "mails", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [m["id"] for m in listed] == sorted(m.id for m in mails)
    outcomes = Counter(m["outcome"] for m in listed)
    assert outcomes["ignored"] == sum(m.state == MailState.IGNORED for m in mails)
    assert outcomes["quarantined"] == sum(
        m.state == MailState.QUARANTINED for m in mails
    )
    unexplained = [
        m
        for m in listed
        if m["outcome"] in ("ignored", "quarantined") and not m["reason"]
    ]
    assert unexplained == []
    assert all(m["reason"] is None for m in listed if m["outcome"] == "ticket")


def _is_refusal(parts: daemon.Parts) -> bool:
    """The last mail was refused over a limit or as unreadable: a person who
    sent it is told why (SPEC, core/limits.REFUSAL_REASONS)."""
    with parts.store.reading() as session:
        row = session.execute(select(MailRow).order_by(MailRow.id.desc())).scalar()
    return row is not None and row.reason.split(":")[0] in REFUSAL_REASONS


def _replies(mails: list[MailRow]) -> int:
    return sum(1 for m in mails if m.reason.startswith("comment on"))


def _outbox_rows(parts: daemon.Parts) -> int:
    with parts.store.reading() as session:
        return session.execute(select(func.count()).select_from(OutboxRow)).scalar_one()


def _last_state(parts: daemon.Parts) -> MailState:
    with parts.store.reading() as session:
        return MailState(
            session.execute(
                select(MailRow.state)
                .order_by(MailRow.handled_at.desc(), MailRow.id.desc())
                .limit(1)
            ).scalar_one()
        )
