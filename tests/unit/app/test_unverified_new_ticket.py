"""A new ticket whose sender the trusted MTA does not vouch for (issue 16).

It is opened (a person may be behind it) but nothing goes to the requester,
the beneficiary or the watchers until a staff member writes on it; staff see
the verdict in the announcement and the history.
"""

from __future__ import annotations

from collections.abc import Callable

from maild.app.ports import MAILD
from maild.core.identity import AuthResultsBlock
from maild.domain import EventKind, Person, TicketState
from tests.unit.app.conftest import ALICE, MARIE, POOL, AppDesk

TRUSTED = {"security": {"trusted_authserv_ids": ["mx.example.com"]}}
FAILED = (AuthResultsBlock(("mx.example.com; dmarc=fail header.from=example.com",)),)
PASSED = (AuthResultsBlock(("mx.example.com; dmarc=pass header.from=example.com",)),)
PAUL = Person("Paul Langevin", "paul@example.com")
PIERRE = Person("Pierre Curie", "pierre@example.com")
BODY = f"Beneficiary: {PIERRE}\n\nPlease reset my password."


def told(desk: AppDesk) -> set[str]:
    """Every address some queued mail goes to."""
    return {address for sent in desk.sent() for address in sent.to}


def test_a_spoofed_new_ticket_is_opened_but_only_staff_are_told(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY, cc=(PAUL,), authentication_results=FAILED)
    assert ticket.unverified_sender == "dmarc=fail"
    assert told(desk) == {POOL}
    (announced,) = desk.sent("announcement.pool")
    assert announced.notice.ticket.unverified_sender == "dmarc=fail"
    (note,) = desk.events(ticket, EventKind.NOTE)
    assert (note.actor, note.is_internal) == (MAILD, True)
    assert "sender not verified (dmarc=fail)" in note.text


def test_a_new_ticket_without_the_trusted_results_is_held_too(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY)
    assert ticket.unverified_sender == "no Authentication-Results from a trusted server"
    assert told(desk) == {POOL}


def test_a_verified_new_ticket_is_confirmed_as_usual(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY, cc=(PAUL,), authentication_results=PASSED)
    assert ticket.unverified_sender == ""
    assert {MARIE, PAUL.address} <= told(desk)


def test_without_a_trusted_server_nothing_is_held(desk: AppDesk) -> None:
    ticket = desk.open(text=BODY, authentication_results=FAILED)
    assert ticket.unverified_sender == ""
    assert MARIE in told(desk)


def test_the_first_verified_mail_from_staff_lifts_the_hold(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY, cc=(PAUL,), authentication_results=FAILED)
    desk.reply(ticket, ALICE, "CLAIM", authentication_results=PASSED)
    after = desk.ticket(ticket.number)
    assert (after.status, after.owner) == (TicketState.IN_PROGRESS, ALICE)
    assert after.unverified_sender == ""
    (claimed,) = desk.sent("claimed.requester")
    assert MARIE in claimed.to
    lifted = desk.events(ticket, EventKind.NOTE)[-1]
    assert (lifted.actor, lifted.is_internal) == (ALICE, True)
    assert lifted.text == "hold lifted: the sender was not verified (dmarc=fail)"


def test_answers_stay_with_staff_while_no_one_has_written(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY, authentication_results=FAILED)
    # the (maybe forged) requester cancels: the command is refused as
    # unverified, and the transcript does not go to the address either
    desk.reply(ticket, MARIE, "CANCEL", authentication_results=FAILED)
    assert desk.ticket(ticket.number).status is TicketState.NEW
    assert MARIE not in told(desk)


def test_an_unverified_mail_from_a_staff_address_does_not_lift_the_hold(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(**TRUSTED)
    ticket = desk.open(text=BODY, authentication_results=FAILED)
    desk.reply(ticket, ALICE, "CLAIM", authentication_results=FAILED)
    after = desk.ticket(ticket.number)
    assert (after.status, after.unverified_sender) == (TicketState.NEW, "dmarc=fail")
    assert MARIE not in told(desk)
