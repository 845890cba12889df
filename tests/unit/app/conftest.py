"""The application layer's test desk: HandleMail on the in-memory store. No I/O.

`AppDesk` wires the real use cases (maild/app) to the real in-memory store
(adapters/memory) and to three fakes: a parser that hands back the
InboundMail a test registered for the raw bytes (no MIME parsing), a renderer
whose subject is `<template>.<audience>` and that keeps every Notification it
rendered, and a message builder that returns a few bytes. A test sends mail
as InboundMail values (`send`, `open`, `reply`), moves `clock.now`, and reads
what happened from the store (`ticket`, `events`, `store.mail_records()`, ...)
and from `sent()`: each queued mail joined with the Notification it was
rendered from, so it sees who was told what, with which values.

The clock is in UTC: Monday 30 November 2026 09:00 UTC is 10:00 in Paris,
within the default business hours.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from maild.adapters.memory import MemoryStore
from maild.app.handle_mail import HandleMail
from maild.app.ports import NewEvent
from maild.config import Settings, parse_settings
from maild.domain import (
    EventKind,
    InboundMail,
    MailDisposition,
    MailOrigin,
    Notice,
    Notification,
    OutboundMail,
    Person,
    Ticket,
)
from maild.errors import MailRejected
from tests.support.factories import FakeClock, make_mail

MON = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Paris
MARIE = "marie@example.com"
ALICE = "alice@example.com"  # technician
BOB = "bob@example.com"  # technician
CHEF = "chef@example.com"  # supervisor
POOL = "techniciens@example.com"
HELPDESK = "helpdesk@example.com"  # incidents
DEMANDES = "demandes@example.com"  # service requests
SMTP = MailOrigin(source="smtp")

CONFIG: dict[str, dict[str, Any]] = {
    "helpdesk": {
        "language": "en",
        "accepted_domains": ["example.com"],
        "incident_address": HELPDESK,
        "request_address": DEMANDES,
        "pool_address": POOL,
        "technicians": [ALICE, BOB],
        "supervisors": [CHEF],
    }
}


def make_settings(**tables: dict[str, Any]) -> Settings:
    """The tests' installation, with some keys of some tables replaced."""
    raw = {name: dict(values) for name, values in CONFIG.items()}
    for name, values in tables.items():
        raw.setdefault(name, {}).update(values)
    return parse_settings(raw, Path("/nonexistent"), Path("/nonexistent/maild.toml"))


SETTINGS = make_settings()


class FakeParser:
    """Hands back what a test registered for the raw bytes: no MIME parsing."""

    def __init__(self) -> None:
        self.mails: dict[bytes, InboundMail | MailRejected] = {}
        self.calls = 0

    def parse(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> InboundMail:
        self.calls += 1
        parsed = self.mails[raw]
        if isinstance(parsed, MailRejected):
            raise parsed
        if envelope_recipients and not parsed.envelope_recipients:
            parsed = replace(parsed, envelope_recipients=envelope_recipients)
        return parsed


@dataclass(frozen=True, slots=True)
class FakeRendered:
    subject: str
    text: str
    html: str


class FakeRenderer:
    """Keeps every Notification it renders; the text says which one it was.

    `failure`, when set, is raised instead of rendering: a crash in the middle
    of a use case, after the mail was registered.
    """

    def __init__(self) -> None:
        self.rendered: list[Notification] = []
        self.failure: Exception | None = None

    def render(self, notification: Notification) -> FakeRendered:
        if self.failure is not None:
            raise self.failure
        self.rendered.append(notification)
        subject = f"{notification.template}.{notification.audience}"
        return FakeRendered(subject, f"#{len(self.rendered) - 1}", "")


def fake_build_message(
    mail: OutboundMail, from_address: str, from_name: str = ""
) -> bytes:
    return f"From: {from_address}\r\nMessage-ID: <{mail.message_id}>\r\n\r\n".encode()


@dataclass(frozen=True, slots=True)
class Sent:
    """One queued mail and the Notification it was rendered from."""

    template: str  # "<template>.<audience>", e.g. "confirmation.requester"
    to: tuple[str, ...]  # as queued: after the safety net and the caps
    notice: Notice
    notification: Notification
    mail: OutboundMail
    ticket_id: int | None
    outbox_id: int


class AppDesk:
    """The use cases on a MemoryStore, with a fake clock, parser and renderer."""

    def __init__(
        self,
        settings: Settings = SETTINGS,
        now: datetime = MON,
        store: MemoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else MemoryStore()
        self.parser = FakeParser()
        self.renderer = FakeRenderer()
        self.clock = FakeClock(now)
        self.app = HandleMail(
            settings,
            self.store,
            self.parser,
            self.renderer,
            fake_build_message,
            self.clock,
        )
        self._serial = itertools.count(1)

    # Mail in

    def mail(self, **fields: Any) -> InboundMail:
        """A new mail from Marie to the helpdesk, unique unless told otherwise."""
        n = next(self._serial)
        fields.setdefault("message_id", f"m{n}@client.example.com")
        fields.setdefault("content_hash", hashlib.sha256(b"%d" % n).hexdigest())
        return make_mail(**fields)

    def send(
        self,
        mail: InboundMail | MailRejected | None = None,
        *,
        raw: bytes | None = None,
        origin: MailOrigin = SMTP,
        **fields: Any,
    ) -> MailDisposition:
        """Hand a mail to HandleMail as the intake would; say where it ended."""
        if mail is None:
            mail = self.mail(**fields)
        if raw is None:
            raw = b"raw mail %d" % next(self._serial)
        self.parser.mails[raw] = mail
        return self.app.handle(raw, origin)

    def open(self, **fields: Any) -> Ticket:
        """Send a new mail; return the ticket it opened."""
        before = len(self.store.tickets())
        self.send(**fields)
        tickets = self.store.tickets()
        assert len(tickets) == before + 1, "no ticket opened"
        return tickets[-1]

    def reply(
        self, ticket: Ticket, sender: str, text: str, **fields: Any
    ) -> MailDisposition:
        """Answer the last mail maild sent about the ticket, as a client would."""
        about = [s.mail for s in self.sent() if s.mail.ticket_number == ticket.number]
        fields.setdefault("subject", f"Re: [HD {ticket.number}] {ticket.subject}")
        fields.setdefault("in_reply_to", (about[-1].message_id,))
        return self.send(sender=Person("", sender), text=text, **fields)

    # What happened

    def ticket(self, number: str) -> Ticket:
        (found,) = [t for t in self.store.tickets() if t.number == number]
        return found

    def events(self, ticket: Ticket, kind: EventKind | None = None) -> list[NewEvent]:
        return [
            e for e in self.store.events(ticket.id) if kind is None or e.kind is kind
        ]

    def sent(self, template: str | None = None, to: str | None = None) -> list[Sent]:
        """The queued mails, in order; those of one template, or for one address."""
        found = []
        for queued in self.store.outbox():
            notification = self.renderer.rendered[int(queued.mail.text[1:])]
            sent = Sent(
                queued.mail.subject,
                queued.mail.to,
                notification.notice,
                notification,
                queued.mail,
                queued.ticket_id,
                queued.id,
            )
            if (template is None or sent.template == template) and (
                to is None or to in sent.to
            ):
                found.append(sent)
        return found

    def templates(self) -> list[str]:
        return [s.template for s in self.sent()]


@pytest.fixture
def desk() -> AppDesk:
    return AppDesk()


@pytest.fixture
def make_desk() -> Callable[..., AppDesk]:
    """A desk on the tests' installation with some settings replaced."""

    def make(now: datetime = MON, **tables: dict[str, Any]) -> AppDesk:
        return AppDesk(make_settings(**tables), now)

    return make
