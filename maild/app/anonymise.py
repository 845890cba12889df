"""Use case: erase a person (`maild person anonymise ADDRESS`).

Every ticket that names the address (requester, beneficiary, watcher,
owner, author of an event) is rewritten in a transaction of its own: the
address, the person's names and phone numbers replaced by the pseudonym
(core/erasure.py) in every text, the ticket's raw mails and attachments
dropped, and an `anonymised` event added that says who asked and when, with
nothing of what was erased. A run killed half-way leaves whole tickets
erased and whole tickets not yet; the next run finds only the latter (the
erased ones name the address no more), so it ends where one run would.
The mails the person sent on no such ticket lose their bytes and are
rewritten likewise; then the blobs nothing names are swept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from maild.app.ports import MAILD, DeskSession, NewEvent, PersonStore
from maild.app.purge import sweep
from maild.core.erasure import Pseudonym, pseudonym, rewriter
from maild.domain import EventKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure did: `maild person anonymise --json`."""

    pseudonym: str
    tickets: int
    mails: int
    attachments: int
    blobs: int
    sent: tuple[str, ...]  # Message-IDs of mail sent on those tickets


class Anonymise:
    def __init__(self, store: PersonStore, secret: bytes) -> None:
        self.store = store
        self.secret = secret

    def run(self, address: str, by: str, now: datetime) -> Erased:
        """Erase an address (lower-cased addr-spec) at the request of `by`."""
        alias = pseudonym(address, self.secret)
        named = self.store.naming(address)
        ticket_ids = list(named.tickets)
        names, phones = self._identity(address, ticket_ids)
        rewrite = rewriter(address, names, phones, alias)
        mails = attachments = 0
        sent: list[str] = []
        for ticket_id in ticket_ids:
            with self.store.transaction() as tx:
                dropped = tx.rewrite_ticket(ticket_id, rewrite)
                tx.add_event(ticket_id, _recorded(alias, by or MAILD, now))
            mails, attachments = (
                mails + dropped.mails,
                attachments + dropped.attachments,
            )
            sent += dropped.sent
        for mail_id in named.mails:
            with self.store.transaction() as tx:
                mails += tx.rewrite_mail(mail_id, rewrite).mails
        with self.store.transaction() as tx:
            tx.rewrite_answers(address, alias.address)
        blobs = sweep(self.store)
        log.info(
            "person anonymised as %s: %s ticket(s) by=%s",
            alias.address,
            len(ticket_ids),
            by,
        )
        return Erased(alias.address, len(ticket_ids), mails, attachments, blobs,
                      tuple(sent))  # fmt: skip

    def _identity(
        self, address: str, ticket_ids: list[int]
    ) -> tuple[set[str], set[str]]:
        """The names and phone numbers the tickets give the person."""
        names: set[str] = set()
        phones: set[str] = set()
        with self.store.transaction(relaxed=True) as tx:
            for ticket_id in ticket_ids:
                _collect(tx, ticket_id, address, names, phones)
        return names, phones


def _collect(
    tx: DeskSession, ticket_id: int, address: str, names: set[str], phones: set[str]
) -> None:
    ticket = tx.ticket_by_id(ticket_id)
    if ticket is None:
        return
    people = [ticket.requester, ticket.beneficiary, *tx.watchers(ticket_id)]
    names.update(p.name for p in people if p.address == address and p.name)
    if ticket.beneficiary.address == address and ticket.phone:
        phones.add(ticket.phone)  # the number to call the beneficiary back


def _recorded(alias: Pseudonym, by: str, now: datetime) -> NewEvent:
    return NewEvent(
        EventKind.ANONYMISED,
        by,
        now,
        f"personal data of {alias.address} erased on request",
        is_internal=True,
    )
