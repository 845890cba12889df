"""Retention and erasure rules (core/retention.py, core/erasure.py), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maild.core.erasure import headers_name, pseudonym, rewriter
from maild.core.retention import (
    BlobName,
    Policy,
    Purged,
    freed_blobs,
    is_mail_due,
    is_ticket_due,
    purge_note,
)
from maild.domain import MailState, TicketState

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
POLICY = Policy(mail_days_after_close=365, quarantine_days=30)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("state", "closed_ago", "due"),
    [
        (TicketState.CLOSED, 366 * DAY, True),
        (TicketState.CLOSED, 365 * DAY - timedelta(seconds=1), False),
        (TicketState.CLOSED, None, False),
        (TicketState.RESOLVED, 400 * DAY, False),  # a closed_at never kept open
        (TicketState.IN_PROGRESS, 400 * DAY, False),
    ],
)
def test_a_ticket_is_due_a_period_after_closure(
    state: TicketState, closed_ago: timedelta | None, due: bool
) -> None:
    closed_at = None if closed_ago is None else NOW - closed_ago
    assert is_ticket_due(state, closed_at, POLICY, NOW) is due


@pytest.mark.parametrize(
    ("state", "handled_ago", "due"),
    [
        (MailState.QUARANTINED, 31 * DAY, True),
        (MailState.IGNORED, 31 * DAY, True),
        (MailState.QUARANTINED, 29 * DAY, False),
        (MailState.DONE, 400 * DAY, False),  # goes with its ticket
        (MailState.PENDING, 400 * DAY, False),
    ],
)
def test_a_short_lived_mail_is_due_after_quarantine_days(
    state: MailState, handled_ago: timedelta, due: bool
) -> None:
    assert is_mail_due(state, NOW - handled_ago, POLICY, NOW) is due


def test_purged_counts_add_up() -> None:
    assert Purged(1, 2, 3) + Purged(4, 5, 6) == Purged(5, 7, 9)


def test_the_pseudonym_is_stable_per_desk_and_hides_the_address() -> None:
    one = pseudonym("Marie@Example.com", b"desk-a")
    assert one == pseudonym("marie@example.com ", b"desk-a")
    assert one != pseudonym("marie@example.com", b"desk-b")
    assert one.address.endswith("@invalid")
    assert "marie" not in one.address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call Marie Curie on 01 23 45 67 89", "Call ANON on ANON"),
        ("mail MARIE@example.com or 01.23.45.67.89", "mail ANON@invalid or ANON"),
        ("marie   curie, +0123456789!", "ANON, ANON!"),
        ("order 9012345678901 stays", "order 9012345678901 stays"),
        ("Jo and Joan", "Jo and Joan"),  # too short a name to look for
    ],
)
def test_the_rewriter_finds_address_names_and_phones(text: str, expected: str) -> None:
    alias = pseudonym("marie@example.com", b"k")
    rewrite = rewriter("marie@example.com", ["Marie Curie", "Jo"], ["01 23 45 67 89"],
                       alias)  # fmt: skip
    got = (
        rewrite(text).replace(alias.address, "ANON@invalid").replace(alias.name, "ANON")
    )
    assert got == expected


def test_the_purge_note_holds_counts_only() -> None:
    note = purge_note(Purged(mails=3, attachments=2))
    assert note == "retention: 3 raw mail(s) and 2 attachment(s) removed"


def test_a_short_phone_is_not_looked_for() -> None:
    alias = pseudonym("a@example.com", b"k")
    assert rewriter("a@example.com", [], ["12 34"], alias)("room 12 34") == "room 12 34"


def test_a_blob_is_freed_when_only_rows_due_name_it() -> None:
    names = [
        BlobName("opening", ticket_id=1, mail_id=10),  # the mail that opened #1
        BlobName("shared", ticket_id=1, mail_id=None),  # attached to #1 and #2
        BlobName("shared", ticket_id=2, mail_id=None),
        BlobName("guide", ticket_id=1, mail_id=None),  # and to live #3
        BlobName("guide", ticket_id=3, mail_id=None),
        BlobName("spam", ticket_id=None, mail_id=20),  # quarantined, due
        BlobName("copy", ticket_id=3, mail_id=21),  # quarantined on live #3
        BlobName("fresh", ticket_id=None, mail_id=22),  # quarantined, not due
    ]
    shas = {"opening", "shared", "guide", "spam", "copy", "fresh"}
    due = freed_blobs(shas, names, frozenset({1, 2}), frozenset({20, 21}))
    assert due == {"opening", "shared", "spam", "copy"}
    assert freed_blobs(shas, names, frozenset({1}), frozenset()) == {"opening"}


HEADERS = (
    b"From: Jean <jean@example.com>\r\nTo: helpdesk@example.com\r\n"
    b'Cc: "Ext" <Ext@Partner.org>,\r\n other@partner.org\r\nSubject: VPN\r\n'
    b"\r\nPlease write to later@partner.org.\r\n"
)


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("ext@partner.org", True),  # any case, in angle brackets
        ("other@partner.org", True),  # on a folded line
        ("jean@example.com", True),
        ("xt@partner.org", False),  # inside a longer address
        ("ext@partner.or", False),
        ("later@partner.org", False),  # in the body only
    ],
)
def test_a_mails_headers_name_an_address_whole(address: str, named: bool) -> None:
    assert headers_name(HEADERS, address) is named
    assert headers_name(HEADERS.replace(b"\r\n", b"\n"), address) is named


def test_a_mail_cut_before_its_body_is_all_headers() -> None:
    assert headers_name(b"From: a@b.org\r\nCc: c@d.org", "c@d.org")
