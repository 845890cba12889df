"""Fuzzing the whole handling: hostile MIME through HandleMail.handle, wired as run.

Parse workers, classification, a real SQLite store and the outbox: every
mail ends as done or quarantined, with its reason, within the budget, and
nothing escapes. CI runs a short derandomized run; `-m slow` the long one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from sqlalchemy import select

from maild.adapters.database.models import MailRow
from maild.config import load_settings
from maild.core.parse import content_hash
from maild.domain import FINAL_STATES, MailDisposition, MailOrigin, MailState
from maild.runtime import daemon
from tests.corpus.test_fuzz_mime import CI, LONG, hostile_mail
from tests.support.daemon import write_config

LIMITS = """
[limits]
max_attachment_bytes = 200000
max_parts = 60
max_mime_depth = 8
max_header_bytes = 20000
parse_seconds = 2
"""
BUDGET_SECONDS = 2 + 5  # parse_seconds, then a worker restart at worst
ORIGIN = MailOrigin(
    "smtp",
    envelope_sender="sender@example.com",
    envelope_recipients=("helpdesk@example.com",),
)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[daemon.Parts]:
    config, _ = write_config(
        tmp_path_factory.mktemp("fuzz"), sink_port=None, extra=LIMITS
    )
    built = daemon.build(
        load_settings(config),
        lambda: datetime(2026, 11, 30, 9, tzinfo=UTC),
        parse_workers=1,
    )
    yield built
    built.close()


def check_handled(parts: daemon.Parts, raw: bytes) -> None:
    handler = daemon.SafeHandler(parts, lambda: None)
    started = time.monotonic()
    disposition = parts.service.handle(raw, ORIGIN)  # no catch-all: a bug fails here
    assert time.monotonic() - started < BUDGET_SECONDS
    with parts.store.reading() as session:  # this mail's record, not the newest
        row = session.execute(
            select(MailRow)
            .where(MailRow.content_hash == content_hash(raw))
            .order_by(MailRow.id)
        ).scalar()
    assert row is not None
    assert MailState(row.state) in FINAL_STATES
    is_quarantined = row.state == MailState.QUARANTINED.value
    assert (disposition is MailDisposition.QUARANTINED) == is_quarantined
    assert row.reason
    assert not row.reason.startswith("internal error")
    assert handler.handle(raw, ORIGIN) is disposition  # a redelivery: the same end


@settings(CI, max_examples=60)
@given(raw=hostile_mail())
def test_hostile_mime_is_handled_to_an_end(parts: daemon.Parts, raw: bytes) -> None:
    check_handled(parts, raw)


@pytest.mark.slow
@settings(LONG, max_examples=1000)
@given(raw=hostile_mail())
def test_hostile_mime_is_handled_to_an_end_long_run(
    parts: daemon.Parts, raw: bytes
) -> None:
    check_handled(parts, raw)
