"""Use case: erase a person (app/anonymise.py) on the in-memory store. No I/O.

Every ticket that names the address is rewritten with the pseudonym, loses
its raw mails and the bytes of what was sent, and records who asked; the
tickets that do not name it are left as they were.
"""

from __future__ import annotations

from maild.app.anonymise import Anonymise
from maild.core.erasure import pseudonym
from maild.domain import EventKind, Person
from tests.unit.app.conftest import ALICE, AppDesk

SECRET = b"desk secret"
PAUL = "paul@example.com"


def test_every_ticket_naming_the_address_is_rewritten_and_no_other(
    desk: AppDesk,
) -> None:
    own = desk.open(subject="Printer", text="Call me on 06 12 34 56 78")
    desk.reply(own, ALICE, "CLAIM")
    other = desk.open(sender=Person("Paul", PAUL), subject="VPN")
    desk.store.mark_sent([q.id for q in desk.store.outbox()], desk.clock.now)
    marie = desk.ticket(own.number).requester

    erased = Anonymise(desk.store, SECRET).run(marie.address, "dpo@example.com",
                                                desk.clock.now)  # fmt: skip

    alias = pseudonym(marie.address, SECRET)
    assert erased.pseudonym == alias.address
    assert erased.tickets == 1
    assert set(erased.sent) == {
        q.mail.message_id for q in desk.store.outbox() if q.ticket_id == own.id
    }
    ticket = desk.ticket(own.number)
    assert ticket.requester == Person(alias.name, alias.address)
    assert marie.address not in repr(ticket)
    assert all(marie.address not in repr(e) for e in desk.events(ticket))
    (recorded,) = desk.events(ticket, EventKind.ANONYMISED)
    assert recorded.actor == "dpo@example.com"
    assert not any(
        m.is_kept for m in desk.store.mail_records() if m.ticket_id == own.id
    )
    assert desk.ticket(other.number).requester.address == PAUL  # not named
