"""Two technicians CLAIM the same ticket at the same moment: the first wins and
the second is told who has it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.adapters.database.engine import upgrade
from maild.adapters.database.report import list_tickets, show_ticket
from maild.config import load_settings
from maild.domain import MailOrigin
from maild.runtime import daemon
from tests.support.daemon import write_config

ORIGIN = MailOrigin(source="replay", envelope_recipients=("helpdesk@example.com",))


def raw(sender: str, subject: str, body: str, n: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <claim-{n}@client.example.com>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def parts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[daemon.Parts]:
    url = (
        ""
        if request.param == "sqlite"
        else str(request.getfixturevalue("fresh_postgres_db"))
    )
    config, _ = write_config(tmp_path, sink_port=None, database_url=url)
    if url:
        upgrade(url)
    built = daemon.build(load_settings(config), parse_workers=2)
    yield built
    built.close()


def test_two_claims_at_once_one_wins(parts: daemon.Parts) -> None:
    for round_ in range(5):
        parts.service.handle(
            raw("marie@example.com", f"Panne {round_}", "Aide", round_ * 10), ORIGIN
        )
        number = list_tickets(parts.store, None)[-1]["number"]
        start = threading.Barrier(2)

        def claim(
            who: str, n: int, number: str = number, start: threading.Barrier = start
        ) -> None:
            start.wait()
            parts.service.handle(raw(who, f"Re: [HD {number}]", "CLAIM", n), ORIGIN)

        threads = [
            threading.Thread(target=claim, args=(who, round_ * 10 + i + 1))
            for i, who in enumerate(("alice@example.com", "bob@example.com"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        shown = show_ticket(parts.store, number)
        assert shown is not None
        kinds = [e["kind"] for e in shown["events"]]
        assert kinds.count("claimed") == 1
        assert kinds.count("command_refused") == 1
        refused = next(e for e in shown["events"] if e["kind"] == "command_refused")
        assert "already_claimed" in refused["text"]
        assert shown["owner"] in ("alice@example.com", "bob@example.com")
        assert refused["actor"] != shown["owner"]
