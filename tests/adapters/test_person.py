"""A person's data (issue 20): export as a zip, anonymise, on a real SQLite desk.

Marie is the requester of one ticket, the beneficiary of another, a watcher
(in Cc) of a third and comments on the first; a fourth ticket is none of
hers. The export holds the three and nothing of the fourth; after the
erasure no file of the desk (database, write-ahead log, storage) holds her
address, name or phone, and the statistics are the same.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from maild.adapters.database.backup import libpq_url
from maild.adapters.database.report import stats
from maild.adapters.database.store import open_store
from maild.core.erasure import pseudonym
from maild.runtime import person
from tests.support.desk import Desk
from tests.support.mails import helpdesk_mail

MARIE = "marie.curie@example.com"
NAME = "Marie Curie"
PHONE = "01 23 45 67 89"
PAUL = "paul@example.com"
JEAN = "jean@example.com"
ALICE = "alice@example.com"
PHOTO = b"MARIES-SCREENSHOT " * 40
OTHERS = "INVOICE-OF-SOMEONE-ELSE"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    handle = Desk(tmp_path)
    yield handle
    handle.close()


def marie_everywhere(desk: Desk) -> dict[str, str]:
    """Marie's tickets as requester, beneficiary and watcher, and one of Paul's."""
    numbers = {}
    desk.handle(helpdesk_mail(
        f"{NAME} <{MARIE}>", "Screen flickers",
        f"Phone: {PHONE}\n\nMy screen flickers, call {PHONE}.", ("screen.png", PHOTO),
    ))  # fmt: skip
    numbers["requester"] = str(desk.tickets()[-1]["number"])
    desk.handle(helpdesk_mail(
        f"Paul <{PAUL}>", "Account for Marie",
        f"Beneficiary: {NAME} <{MARIE}>\nPhone: {PHONE}\n\n"
        f"Please open an account for {NAME}.",
    ))  # fmt: skip
    numbers["beneficiary"] = str(desk.tickets()[-1]["number"])
    desk.handle(
        helpdesk_mail(
            f"Jean <{JEAN}>",
            "Meeting room",
            "The projector is dead.",
            cc=f"{NAME} <{MARIE}>",
        )
    )
    numbers["watcher"] = str(desk.tickets()[-1]["number"])
    desk.handle(helpdesk_mail(f"Paul <{PAUL}>", "Invoice", f"{OTHERS} attached",
                              ("invoice.pdf", OTHERS.encode() * 10)))  # fmt: skip
    numbers["other"] = str(desk.tickets()[-1]["number"])
    number = numbers["requester"]
    desk.mail(ALICE, f"Re: [HD {number}]", "CLAIM")
    desk.handle(
        helpdesk_mail(MARIE, f"Re: [HD {number}]", "It got worse, Marie Curie here.")
    )
    desk.sender.deliver_due()
    return numbers


def test_the_export_holds_everything_naming_her_and_nothing_else(
    desk: Desk, tmp_path: Path
) -> None:
    numbers = marie_everywhere(desk)
    out = tmp_path / "marie.zip"

    person.export(desk.settings, MARIE.upper(), out, datetime.now(UTC))

    with zipfile.ZipFile(out) as archive:
        index = json.loads(archive.read("index.json"))
        files = {name: archive.read(name) for name in archive.namelist()}
    exported = {t["number"] for t in index["tickets"]}
    assert exported == {numbers["requester"], numbers["beneficiary"],
                        numbers["watcher"]}  # fmt: skip
    everything = b"".join(files.values())
    assert OTHERS.encode() not in everything
    assert numbers["other"].encode() not in everything
    assert PHOTO in files.values()
    requester = next(t for t in index["tickets"] if t["number"] == numbers["requester"])
    assert [e["kind"] for e in requester["events"]].count("comment") == 1
    assert requester["attachments"][0]["file"] in files
    mails = {m["ticket"]: m for m in index["mails"] if m["sender"] == MARIE}
    assert b"It got worse" in files[mails[numbers["requester"]]["file"]]
    for m in index["mails"]:
        assert m["file"] in files
        assert m["ticket"] in exported


def stats_of(desk: Desk) -> dict[str, Any]:
    """`maild stats` of the desk's database, from a store of its own."""
    store = open_store(desk.settings, migrate=False)
    try:
        return stats(store)
    finally:
        store.close()


def grep(root: Path, needles: list[bytes]) -> list[str]:
    """Files under root holding a needle, any case (UTF-8 and UTF-16 text)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        for needle in needles:
            if (
                needle.lower() in data
                or needle.lower().decode().encode("utf-16-le") in data
            ):
                found.append(f"{path.name}: {needle!r}")
    return found


def test_anonymise_leaves_no_trace_and_the_same_statistics(
    desk: Desk, tmp_path: Path
) -> None:
    numbers = marie_everywhere(desk)
    before = stats(desk.store)
    shown = {k: desk.ticket(n) for k, n in numbers.items()}
    desk.close()
    needles = [MARIE.encode(), b"Curie", b"0123456789", PHONE.encode(), PHOTO[:18]]
    assert grep(tmp_path, needles) != []

    done = person.anonymise(desk.settings, MARIE, "dpo@example.com", datetime.now(UTC))

    assert done.tickets == 3
    assert grep(tmp_path, needles) == []
    assert stats_of(desk) == before  # read afresh from the files
    desk.restart()
    alias = done.pseudonym
    requester = desk.ticket(numbers["requester"])
    assert requester["requester"]["address"] == alias
    assert requester["events"][-1]["kind"] == "anonymised"
    assert requester["events"][-1]["actor"] == "dpo@example.com"
    assert requester["attachments"] == []
    assert [e["kind"] for e in requester["events"]][:-1] == [
        e["kind"] for e in shown["requester"]["events"]
    ]
    assert desk.ticket(numbers["beneficiary"])["requester"]["address"] == PAUL
    assert desk.ticket(numbers["watcher"])["watchers"] == [alias]
    assert desk.ticket(numbers["other"]) == shown["other"]


def test_the_pseudonym_is_stable_and_a_second_run_changes_nothing(
    desk: Desk,
) -> None:
    marie_everywhere(desk)
    first = person.anonymise(desk.settings, MARIE, "dpo", datetime.now(UTC))
    again = person.anonymise(desk.settings, MARIE, "dpo", datetime.now(UTC))
    assert (again.tickets, again.mails, again.attachments) == (0, 0, 0)
    secret = person.desk_secret(desk.settings.storage_dir)
    assert first.pseudonym == again.pseudonym == pseudonym(MARIE, secret).address


@pytest.mark.postgres
def test_on_postgresql_no_row_and_no_kept_file_names_her_after_the_erasure(
    tmp_path: Path, fresh_postgres_db: str
) -> None:
    desk = Desk(tmp_path, database_url=fresh_postgres_db)
    try:
        numbers = marie_everywhere(desk)
        before = stats(desk.store)
    finally:
        desk.close()
    needles = [MARIE.encode(), b"Curie", b"0123456789", PHONE.encode()]
    assert grep_dump(fresh_postgres_db, needles) != []
    assert grep(desk.settings.storage_dir, [*needles, PHOTO[:18]]) != []

    done = person.anonymise(desk.settings, MARIE, "dpo@example.com", datetime.now(UTC))

    assert done.tickets == 3
    assert grep_dump(fresh_postgres_db, needles) == []  # every row, every table
    assert grep(desk.settings.storage_dir, [*needles, PHOTO[:18]]) == []
    assert stats_of(desk) == before  # read afresh from the files
    desk.restart()
    try:
        assert desk.ticket(numbers["watcher"])["watchers"] == [done.pseudonym]
    finally:
        desk.close()


def grep_dump(url: str, needles: list[bytes]) -> list[str]:
    """The needles found in a plain pg_dump of the database (its rows as they
    are now; dead row versions wait for VACUUM, README Personal data)."""
    dump = subprocess.run(
        ["pg_dump", "--format=plain", "--data-only", libpq_url(url)],
        capture_output=True, check=True,
    ).stdout.lower()  # fmt: skip
    return [repr(n) for n in needles if n.lower() in dump]


OUTSIDER = "ext@partner.org"  # outside the accepted domains: never a watcher


def test_an_outsider_only_in_cc_is_found_exported_and_erased(
    desk: Desk, tmp_path: Path
) -> None:
    desk.handle(
        helpdesk_mail(
            f"Jean <{JEAN}>",
            "VPN for our partner",
            "Please give access.",
            cc=f"Ext <{OUTSIDER}>",
        )
    )
    cc_ticket = str(desk.tickets()[-1]["number"])
    desk.handle(helpdesk_mail(f"Paul <{PAUL}>", "Invoice", f"{OTHERS} attached"))
    assert desk.ticket(cc_ticket)["watchers"] == []
    out = tmp_path / "ext.zip"

    person.export(desk.settings, OUTSIDER, out, datetime.now(UTC))

    with zipfile.ZipFile(out) as archive:
        index = json.loads(archive.read("index.json"))
        files = b"".join(archive.read(name) for name in archive.namelist())
    assert [t["number"] for t in index["tickets"]] == [cc_ticket]
    assert OUTSIDER.encode() in files  # the mail that named them
    assert OTHERS.encode() not in files
    desk.close()
    out.unlink()
    assert grep(tmp_path, [OUTSIDER.encode()]) != []

    done = person.anonymise(desk.settings, OUTSIDER, "dpo", datetime.now(UTC))

    assert done.tickets == 1
    assert grep(tmp_path, [OUTSIDER.encode()]) == []
