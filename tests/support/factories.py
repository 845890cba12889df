"""Factories for domain values in unit tests: make_mail(...), make_view(...)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from maild.core.classify import HelpdeskPolicy
from maild.domain import (
    AutoSignals,
    InboundMail,
    Person,
    Ticket,
    TicketState,
    TicketType,
    TicketView,
    Urgency,
)

# The tests' installation, as classification sees it.
POLICY = HelpdeskPolicy(
    tag="HD",
    accepted_domains=("example.com",),
    incident_address="helpdesk@example.com",
    request_address="demandes@example.com",
    own_message_id_domain="example.com",
    own_address="helpdesk@example.com",
)


@dataclass
class FakeClock:
    """The injected clock of the tests: set .now to move time."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


_BASE = InboundMail(
    message_id="m1@client.example.com",
    sender=Person("Marie Curie", "marie@example.com"),
    reply_to=(),
    subject="Imprimante en panne",
    text="L'imprimante ne répond plus.",
    to=(Person("", "helpdesk@example.com"),),
    cc=(),
    envelope_sender=None,
    envelope_recipients=(),
    delivered_to=(),
    in_reply_to=(),
    references=(),
    auto=AutoSignals(),
    is_high_importance=False,
    authentication_results=(),
    attachments=(),
    raw_size=100,
    content_hash="0" * 64,
)


def make_mail(**overrides: Any) -> InboundMail:
    """An ordinary new-ticket mail, with the given fields replaced."""
    return replace(_BASE, **overrides)


def make_view(**overrides: Any) -> TicketView:
    """A ticket as notifications see it, with the given fields replaced."""
    marie = Person("Marie Curie", "marie@example.com")
    base = TicketView(
        number="I261129_0007",
        ticket_type=TicketType.INCIDENT,
        status=TicketState.NEW,
        subject="Imprimante en panne",
        description="Plus rien ne sort.",
        requester=marie,
        beneficiary=marie,
        application="Impression",
        urgency=Urgency.MEDIUM,
        phone="0102030405",
        owner=None,
        created_at=datetime(2026, 11, 27, 16, 30, tzinfo=UTC),
        callback_due_at=datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
    )
    return replace(base, **overrides)


def make_ticket(**overrides: Any) -> Ticket:
    """A ticket as the store keeps it: in the pool, medium urgency, due at 13:00."""
    base = Ticket(
        id=7,
        number="I261130_0007",
        token="tok",
        ticket_type=TicketType.INCIDENT,
        status=TicketState.NEW,
        subject="Imprimante en panne",
        description="Elle ne répond plus.",
        requester=Person("Marie Curie", "marie@example.com"),
        beneficiary=Person("Marie Curie", "marie@example.com"),
        application="Impression",
        urgency=Urgency.MEDIUM,
        phone="0102030405",
        owner=None,
        created_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        callback_due_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
    )
    return replace(base, **overrides)
