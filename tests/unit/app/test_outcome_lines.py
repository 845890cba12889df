"""HandleMail's log: one outcome line per mail, with its fields, whatever it came to."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from maild.domain import AutoSignals, Person
from maild.errors import UnparseableMail
from tests.unit.app.conftest import ALICE, MARIE, AppDesk

LOGGER = "maild.app.handle_mail"


def outcome_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "outcome")]


def only_outcome(caplog: pytest.LogCaptureFixture) -> dict[str, object]:
    (line,) = outcome_lines(caplog)
    assert (line.name, line.getMessage()) == (LOGGER, "mail handled")
    keys = ("levelname", "mail", "outcome", "ticket", "sender", "msgid", "reason")
    return {key: getattr(line, key) for key in keys}


@pytest.fixture
def caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="maild")
    return caplog


def test_a_new_ticket(desk: AppDesk, caplog: pytest.LogCaptureFixture) -> None:
    ticket = desk.open(message_id="new@client.example.com")
    assert only_outcome(caplog) == {
        "levelname": "INFO",
        "mail": desk.store.mail_records()[0].id,
        "outcome": "ticket",
        "ticket": ticket.number,
        "sender": MARIE,
        "msgid": "new@client.example.com",
        "reason": None,
    }


def test_a_reply_with_a_command(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = desk.open()
    caplog.clear()
    desk.reply(ticket, ALICE, "CLAIM", message_id="claim@client.example.com")
    line = only_outcome(caplog)
    assert (line["outcome"], line["ticket"], line["sender"], line["msgid"]) == (
        "reply",
        ticket.number,
        ALICE,
        "claim@client.example.com",
    )
    (applied,) = [r for r in caplog.records if r.getMessage() == "command applied"]
    fields = [getattr(applied, key) for key in ("mail", "ticket", "event", "sender")]
    assert fields == [line["mail"], ticket.number, "claimed", ALICE]


def test_a_help_mail_is_answered(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk.send(subject="HELP")
    line = only_outcome(caplog)
    assert (line["outcome"], line["ticket"], line["sender"]) == ("reply", None, MARIE)


def test_a_robot_mail_is_ignored_with_its_reason(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk.send(auto=AutoSignals(auto_submitted="auto-replied"))
    line = only_outcome(caplog)
    assert (line["levelname"], line["outcome"], line["reason"]) == (
        "INFO",
        "ignored",
        "auto_reply: Auto-Submitted: auto-replied",
    )


def test_an_outsider_is_quarantined_at_warning(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk.send(sender=Person("", "spam@example.org"), message_id="spam@example.org")
    line = only_outcome(caplog)
    assert line["levelname"] == "WARNING"
    assert (line["outcome"], line["sender"], line["msgid"]) == (
        "quarantined",
        "spam@example.org",
        "spam@example.org",
    )
    assert str(line["reason"]).startswith("outsider: ")


def test_an_unparseable_mail_is_quarantined(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk.send(UnparseableMail("no headers"))
    line = only_outcome(caplog)
    assert (line["outcome"], line["reason"]) == (
        "quarantined",
        "unparseable: no headers",
    )


def test_a_new_ticket_held_by_the_cap_is_one_quarantined_line(
    make_desk: Callable[..., AppDesk], caplog: pytest.LogCaptureFixture
) -> None:
    desk = make_desk(limits={"new_tickets_per_hour": 1})
    desk.send()
    caplog.clear()
    desk.send()
    line = only_outcome(caplog)
    assert (line["outcome"], line["ticket"]) == ("quarantined", None)
    assert str(line["reason"]).startswith("new_tickets_per_hour: 1 tickets")


def test_the_same_mail_again_has_no_second_outcome(
    desk: AppDesk, caplog: pytest.LogCaptureFixture
) -> None:
    mail = desk.mail()
    desk.send(mail)
    caplog.clear()
    desk.send(mail)
    assert outcome_lines(caplog) == []
    assert [r.getMessage() for r in caplog.records] == ["mail already handled"]
