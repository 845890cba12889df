"""Field step: `Key: value` lines at the top of a new ticket's body."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maild.core.fields import extract_fields
from maild.core.parse import parse_mail
from maild.domain import Person, TicketFields, TicketType, Urgency

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", TicketFields()),
        ("Just a problem.\n", TicketFields(description="Just a problem.")),
        (
            "\n\n  \nApplication: SAP\n\nIt crashes.\n\n\n",
            TicketFields(application="SAP", description="It crashes."),
        ),
        (
            "application : SAP finance\r\nURGENCE : Élevée\r\nproblem",
            TicketFields(application="SAP finance", description="problem"),
        ),
        (
            "Urgence\u00a0: haute\nTél : 06 12 34 56 78\n",
            TicketFields(urgency=Urgency.HIGH, phone="06 12 34 56 78"),
        ),
        (
            "Téléphone: +33 1 23 45 67 89\nTelephone: 0102030405\n",
            TicketFields(phone="0102030405"),  # the last one wins
        ),
        ("Phone: 555-0100\n", TicketFields(phone="555-0100")),
        ("Type: Demande\n", TicketFields(ticket_type=TicketType.REQUEST)),
        ("TYPE: request\n", TicketFields(ticket_type=TicketType.REQUEST)),
        ("type: Incident.\n", TicketFields(ticket_type=TicketType.INCIDENT)),
        ("Type: question\n", TicketFields()),
        ("Type:\n", TicketFields()),
        (
            "Bonjour,\nApplication: SAP\n",
            TicketFields(description="Bonjour,\nApplication: SAP"),
        ),
        (
            "Application: Outlook\nSujet: mot de passe\nUrgence: haute\n",
            TicketFields(
                application="Outlook",
                description="Sujet: mot de passe\nUrgence: haute",
            ),
        ),
        ("Application SAP\n", TicketFields(description="Application SAP")),
        (
            "Application: \n  indented description\n\n",
            TicketFields(description="  indented description"),
        ),
    ],
)
def test_extract_fields(text: str, expected: TicketFields) -> None:
    assert extract_fields(text) == expected


@pytest.mark.parametrize(
    ("value", "urgency"),
    [
        ("basse", Urgency.LOW),
        ("Low", Urgency.LOW),
        ("MOYENNE", Urgency.MEDIUM),
        ("medium", Urgency.MEDIUM),
        ("Haute", Urgency.HIGH),
        ("high!", Urgency.HIGH),
        ("haute (serveur arrêté)", Urgency.HIGH),
        ("critique", None),
        ("", None),
    ],
)
def test_urgency(value: str, urgency: Urgency | None) -> None:
    for key in ("Urgence", "Urgency", "urgence"):
        assert extract_fields(f"{key}: {value}\n").urgency == urgency


@pytest.mark.parametrize(
    ("value", "person"),
    [
        (
            "Jean Dupont <Jean.Dupont@Example.com>",
            Person("Jean Dupont", "jean.dupont@example.com"),
        ),
        ("jean@example.com", Person("", "jean@example.com")),
        ("<jean@example.com>", Person("", "jean@example.com")),
        ("Jean Dupont jean@example.com", Person("Jean Dupont", "jean@example.com")),
        (
            '"Dupont, Jean" <jean@example.com>',
            Person("Dupont, Jean", "jean@example.com"),
        ),
        ("jean@example.com (Jean)", Person("(Jean)", "jean@example.com")),
        ("Jean Dupont", None),
        ("", None),
    ],
)
def test_beneficiary(value: str, person: Person | None) -> None:
    for key in ("Bénéficiaire", "BENEFICIAIRE", "Beneficiary"):
        assert extract_fields(f"{key}: {value}\nbody").beneficiary == person


def test_french_fixture() -> None:
    raw = (FIXTURES / "new_ticket_fr_fields.eml").read_bytes()
    fields = extract_fields(parse_mail(raw).text)
    assert fields.application == "Impression"
    assert fields.urgency is Urgency.HIGH
    assert fields.beneficiary == Person("Jean Dupont", "jean.dupont@example.com")
    assert fields.phone == "01 23 45 67 89"
    assert fields.ticket_type is None
    assert fields.description.startswith("Bonjour,\n\nL'imprimante")
    assert fields.description.endswith("Merci,\nMarie")


def test_english_fixture() -> None:
    raw = (FIXTURES / "new_ticket_en_fields.eml").read_bytes()
    fields = extract_fields(parse_mail(raw).text)
    assert fields == TicketFields(
        application="VPN",
        urgency=Urgency.LOW,
        beneficiary=Person("", "jane.doe@example.com"),
        phone="+44 20 7946 0000",
        ticket_type=TicketType.REQUEST,
        description=(
            "Hello,\n\nSince this morning the VPN client says "
            '"authentication failed".\n\nThanks,\nJohn'
        ),
    )


def test_html_only_fixture_fields() -> None:
    raw = (FIXTURES / "html_only.eml").read_bytes()
    fields = extract_fields(parse_mail(raw).text)
    assert fields.application == "Messagerie"
    assert fields.description.startswith("Bonjour,")


@given(st.text())
def test_any_text_gives_fields_and_loses_no_words(text: str) -> None:
    fields = extract_fields(text)
    words = text.split()
    kept = fields.description.split()
    assert kept == words[len(words) - len(kept) :]


def test_values_are_bounded_to_what_the_store_keeps() -> None:
    fields = extract_fields("Application: " + "A" * 1000 + "\nPhone: " + "1" * 500)
    assert len(fields.application) == 255
    assert len(fields.phone) == 64


def test_beneficiary_is_bounded_too() -> None:
    fields = extract_fields("Beneficiary: " + "N" * 400 + " <paul@example.com>")
    assert fields.beneficiary is not None
    assert len(fields.beneficiary.name) == 255
    long_address = "Beneficiary: " + "x" * 400 + "@example.com"
    assert extract_fields(long_address).beneficiary is None
