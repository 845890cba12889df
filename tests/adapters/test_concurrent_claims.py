"""Two technicians CLAIM the same ticket at the same moment: the first wins and
the second is told who has it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.desk import Desk


def raw(sender: str, subject: str, body: str, n: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <claim-{n}@client.example.com>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    url = (
        ""
        if request.param == "sqlite"
        else str(request.getfixturevalue("fresh_postgres_db"))
    )
    handle = Desk(tmp_path, language="fr", database_url=url, parse_workers=2)
    yield handle
    handle.close()


def test_two_claims_at_once_one_wins(desk: Desk) -> None:
    for round_ in range(5):
        desk.handle(raw("marie@example.com", f"Panne {round_}", "Aide", round_ * 10))
        number = desk.tickets()[-1]["number"]
        start = threading.Barrier(2)

        def claim(
            who: str, n: int, number: str = number, start: threading.Barrier = start
        ) -> None:
            start.wait()
            desk.handle(raw(who, f"Re: [HD {number}]", "CLAIM", n))

        threads = [
            threading.Thread(target=claim, args=(who, round_ * 10 + i + 1))
            for i, who in enumerate(("alice@example.com", "bob@example.com"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        shown = desk.ticket(number)
        kinds = [e["kind"] for e in shown["events"]]
        assert kinds.count("claimed") == 1
        assert kinds.count("command_refused") == 1
        refused = next(e for e in shown["events"] if e["kind"] == "command_refused")
        assert "already_claimed" in refused["text"]
        assert shown["owner"] in ("alice@example.com", "bob@example.com")
        assert refused["actor"] != shown["owner"]
