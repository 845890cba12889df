"""The report of a failed delivery to the supervisors: what, to whom, why; fr and en."""

from __future__ import annotations

import pytest

from maild.adapters.templates import TEMPLATE_DIR, HelpdeskAddresses, TemplateRenderer
from maild.core import notices
from maild.domain import Audience, Notification, TicketView
from tests.support.factories import make_view

HELPDESK = HelpdeskAddresses(
    "helpdesk@example.com", "demandes@example.com", "techniciens@example.com"
)
ERROR = "all recipients refused: jeanne@example.com: 550 <jeanne@example.com> unknown"


def render(language: str, ticket: TicketView | None) -> tuple[str, str, str]:
    notification = Notification(
        template="delivery_failed",
        audience=Audience.SUPERVISOR,
        to=("chef@example.com",),
        notice=notices.DeliveryFailed(
            ticket=ticket,
            error=ERROR,
            failed_recipients=("jeanne@example.com", "paul@example.com"),
            failed_subject="[HD I261129_0007] Votre demande est enregistrée",
        ),
    )
    mail = TemplateRenderer(TEMPLATE_DIR, language, "HD", HELPDESK).render(notification)
    return mail.subject, mail.text, mail.html


@pytest.mark.parametrize(
    ("language", "with_ticket", "subject"),
    [
        ("fr", True, "[HD I261129_0007] Message non remis : Imprimante en panne"),
        ("en", True, "[HD I261129_0007] Mail not delivered: Imprimante en panne"),
        (
            "fr",
            False,
            "Message non remis : [HD I261129_0007] Votre demande est enregistrée",
        ),
        (
            "en",
            False,
            "Mail not delivered: [HD I261129_0007] Votre demande est enregistrée",
        ),
    ],
)
def test_report_says_what_failed_to_whom_and_why(
    language: str, with_ticket: bool, subject: str
) -> None:
    ticket = make_view(subject="Imprimante en panne") if with_ticket else None
    rendered_subject, text, html = render(language, ticket)
    assert rendered_subject == subject
    assert "jeanne@example.com, paul@example.com" in text
    assert ERROR in text
    assert "&lt;jeanne@example.com&gt; unknown" in html  # escaped, never raw
    assert "<jeanne@example.com> unknown" not in html
    assert "[HD I261129_0007] Votre demande est enregistrée" in text
    assert ("Demandeur" in text or "Requester" in text) is with_ticket  # the fields
