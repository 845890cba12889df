"""Notification templates: every template renders in fr and en, safely."""

from __future__ import annotations

import re
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import cast

import jinja2
import pytest
from markupsafe import escape

from maild.adapters.template_samples import TICKET
from maild.adapters.templates import (
    RENDERER_NAMES,
    SUBJECT_MAX,
    TEMPLATE_DIR,
    HelpdeskAddresses,
    TemplateRenderer,
    attachment_names,
    tagged_subject,
)
from maild.core import notices
from maild.core.notify import HelpAsked, notifications_for
from maild.domain import (
    Attachment,
    Audience,
    CommandResult,
    Notice,
    Notification,
    Person,
    Role,
    TicketState,
    TicketType,
    TicketView,
    Urgency,
)

HELPDESK = HelpdeskAddresses(
    incident_address="helpdesk@example.com",
    request_address="demandes@example.com",
    pool_address="techniciens@example.com",
    timezone="Europe/Paris",
)
TICKET_TEMPLATES = [
    ("confirmation", Audience.REQUESTER),
    ("announcement", Audience.POOL),
    ("transcript", Audience.SENDER),
    ("comment", Audience.OWNER),
    ("comment", Audience.REQUESTER),
    ("claimed", Audience.REQUESTER),
    ("resolved", Audience.REQUESTER),
    ("assigned", Audience.OWNER),
    ("refused", Audience.OWNER),
    ("accepted", Audience.OWNER),
    ("cancelled", Audience.OWNER),
    ("closed_ticket", Audience.SENDER),
    ("reminder", Audience.OWNER),
    ("pdr_retry", Audience.OWNER),
    ("breach", Audience.SUPERVISOR),
    ("auto_closed", Audience.REQUESTER),
]
NO_TICKET_TEMPLATES = [
    ("help", Audience.SENDER),
    ("list", Audience.SENDER),
    ("rejected", Audience.SENDER),
    ("not_applied", Audience.SENDER),
    ("new_ticket_held", Audience.SENDER),
    ("digest", Audience.TECHNICIAN),
    ("digest", Audience.SUPERVISOR),
    ("delivery_failed", Audience.SUPERVISOR),  # with or without a ticket
]
ALL_TEMPLATES = TICKET_TEMPLATES + NO_TICKET_TEMPLATES
LANGUAGES = ["fr", "en"]
READERS = [Role.REQUESTER, Role.TECHNICIAN, Role.SUPERVISOR]
HOSTILE = "<script>alert('x')</script>"
REASONS = [
    "not_on_ticket",
    "not_staff",
    "not_supervisor",
    "not_requester",
    "not_owner",
    "already_claimed",
    "wrong_state",
    "invalid_argument",
    "not_assignable",
    "near_keyword",
    "missing_score",
    "bad_score",
    "missing_address",
    "bad_address",
    "missing_text",
    "unexpected_text",
]


def make_ticket(**changes: object) -> TicketView:
    """The operator templates' sample ticket, as it is when it is just opened."""
    ticket = replace(
        TICKET,
        number="I261129_0007",
        status=TicketState.NEW,
        owner=None,
        created_at=datetime(2026, 11, 30, 9, 12, tzinfo=UTC),
        callback_due_at=datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
        attachment_names=("photo.jpg", "journal.txt"),
        first_call_at=None,
    )
    return replace(ticket, **changes)  # type: ignore[arg-type]


OTHER_TICKET = make_ticket(
    number="S261129_0002",
    ticket_type=TicketType.REQUEST,
    status=TicketState.IN_PROGRESS,
    subject="Accès VPN",
    urgency=Urgency.LOW,
    owner="tech@example.com",
    callback_due_at=None,
)


REMARK = "A remark."
TECH = "tech@example.com"
RESULTS = (
    CommandResult("PRENDRE", is_done=True),
    CommandResult("NOTER 9", is_done=False, reason="bad_score"),
)
SUMMARY = ("CLAIM: done", "RATE 9: refused, the score goes from 1 to 5")
_DEFAULT = make_ticket()


def make_notice(
    template: str,
    ticket: TicketView | None = _DEFAULT,
    reader: Role = Role.TECHNICIAN,
) -> Notice:
    """The notice core/notify.py gives a template, with sample values.

    ticket=None where a template may have none; for a template that needs one,
    only to see it fail loudly without.
    """
    about = cast(TicketView, ticket)
    tickets = (make_ticket(), OTHER_TICKET)
    match template:
        case "confirmation":
            return notices.Confirmation(about)
        case "announcement":
            return notices.Announcement(about)
        case "comment":
            return notices.Comment(about, author=TECH, comment=REMARK)
        case "claimed":
            return notices.Claimed(about, claimed_by=TECH)
        case "resolved":
            return notices.Resolved(about, resolved_by=TECH, resolution=REMARK)
        case "assigned":
            return notices.Assigned(about, assigned_by=TECH)
        case "refused":
            return notices.Refused(about, refused_by=TECH, reason=REMARK)
        case "accepted":
            return notices.Accepted(about, accepted_by=TECH, comment=REMARK)
        case "cancelled":
            return notices.Cancelled(about, cancelled_by=TECH, reason=REMARK)
        case "closed_ticket" | "reminder" | "pdr_retry" | "breach" | "auto_closed":
            return notices.AboutTicket(about)
        case "transcript":
            return notices.Transcript(ticket, RESULTS)
        case "help":
            return notices.Help(reader)
        case "list":
            return notices.TicketList(reader, tickets)
        case "digest":
            return notices.Digest(tickets, SUMMARY)
        case "rejected":
            return notices.Rejected(refused_subject=REMARK, reason="")
        case "not_applied":
            return notices.NotApplied()
        case "new_ticket_held":
            return notices.NewTicketHeld(held_subject=REMARK, opened_last_hour=20)
        case "delivery_failed":
            return notices.DeliveryFailed(
                ticket, REMARK, ("jeanne.martin@example.com",), "Imprimante en panne"
            )
    return notices.Confirmation(about)  # a probe template of a test's own


def make_notification(
    template: str,
    audience: Audience,
    *,
    notice: Notice | None = None,
    ticket: TicketView | None = _DEFAULT,
    reader: Role = Role.TECHNICIAN,
    **fields: object,
) -> Notification:
    """A notification for template with sample values, fields of its notice replaced."""
    notice = notice or make_notice(template, ticket, reader)
    return Notification(
        template,
        audience,
        ("jeanne.martin@example.com",),
        replace(notice, **fields),
        attachments=(Attachment("capture.png", "image/png", b"png"),),
    )


def filled_notice(
    template: str,
    ticket: TicketView | None,
    value: str,
    results: tuple[CommandResult, ...] = (),
    tickets: tuple[TicketView, ...] = (),
) -> Notice:
    """The notice of template with value in every text it has (names, comments,
    subjects, addresses, lines); results and tickets in theirs."""
    notice = make_notice(template, ticket)
    changes: dict[str, object] = {}
    for field in dataclass_fields(notice):
        current = getattr(notice, field.name)
        if field.name == "results":
            changes[field.name] = results
        elif field.name == "tickets":
            changes[field.name] = tickets
        elif isinstance(current, Enum | int | TicketView):
            continue  # a code of ours, a count, or the ticket itself
        elif isinstance(current, tuple):
            changes[field.name] = (value,)
        elif isinstance(current, str) or "str" in str(field.type):
            changes[field.name] = value
    return replace(notice, **changes)


def renderer(language: str, template_dir: Path = TEMPLATE_DIR) -> TemplateRenderer:
    return TemplateRenderer(template_dir, language, "HD", HELPDESK)


def texts(language: str, notification: Notification) -> tuple[str, str]:
    mail = renderer(language).render(notification)
    return mail.text, mail.html


def in_html(words: str, html: str) -> bool:
    """Tell whether words show in HTML, escaped; quotes may stay as written."""
    return str(escape(words)).replace("&#39;", "'") in html.replace("&#39;", "'")


def assert_clean(body: str) -> None:
    for leftover in ("{{", "{%", "None", "Undefined", "\n\n\n\n"):
        assert leftover not in body, leftover


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("template", "audience"), TICKET_TEMPLATES)
def test_every_ticket_template_renders(
    language: str, template: str, audience: Audience
) -> None:
    mail = renderer(language).render(make_notification(template, audience))
    assert mail.subject.startswith("[HD I261129_0007] ")
    for body in (mail.text, mail.html):
        assert "I261129_0007" in body
        assert_clean(body)
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in mail.html
    assert mail.text.endswith("\n")


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("template", "audience"), NO_TICKET_TEMPLATES)
def test_every_template_without_ticket_renders(
    language: str, template: str, audience: Audience, reader: Role
) -> None:
    notification = make_notification(template, audience, ticket=None, reader=reader)
    mail = renderer(language).render(notification)
    assert mail.subject
    assert not mail.subject.startswith("[")
    for body in (mail.text, mail.html):
        assert_clean(body)
    assert f'<html lang="{language}">' in mail.html
    assert mail.text.endswith("\n")


@pytest.mark.parametrize(
    ("template", "audience"),
    [pair for pair in TICKET_TEMPLATES if pair[0] != "transcript"],  # may have none
)
def test_ticket_templates_need_a_ticket(template: str, audience: Audience) -> None:
    with pytest.raises(jinja2.UndefinedError):
        renderer("fr").render(make_notification(template, audience, ticket=None))
    assert make_notification(template, audience, ticket=None).ticket is None


@pytest.mark.parametrize(
    ("language", "template", "audience", "subject"),
    [
        ("fr", "confirmation", Audience.REQUESTER, "Imprimante en panne"),
        ("en", "confirmation", Audience.REQUESTER, "Imprimante en panne"),
        ("fr", "announcement", Audience.POOL, "Nouveau ticket : Imprimante en panne"),
        ("en", "announcement", Audience.POOL, "New ticket: Imprimante en panne"),
        ("fr", "transcript", Audience.SENDER, "Re: Imprimante en panne"),
        ("en", "transcript", Audience.SENDER, "Re: Imprimante en panne"),
        ("fr", "comment", Audience.OWNER, "Nouveau commentaire : Imprimante en panne"),
        ("en", "comment", Audience.OWNER, "New comment: Imprimante en panne"),
        ("fr", "resolved", Audience.REQUESTER, "Ticket résolu : Imprimante en panne"),
        ("en", "resolved", Audience.REQUESTER, "Ticket resolved: Imprimante en panne"),
        (
            "fr",
            "breach",
            Audience.SUPERVISOR,
            "Délai de rappel dépassé : Imprimante en panne",
        ),
        (
            "en",
            "breach",
            Audience.SUPERVISOR,
            "Call-back deadline missed: Imprimante en panne",
        ),
        ("fr", "cancelled", Audience.OWNER, "Ticket annulé : Imprimante en panne"),
        ("en", "closed_ticket", Audience.SENDER, "Ticket closed: Imprimante en panne"),
    ],
)
def test_subjects(
    language: str, template: str, audience: Audience, subject: str
) -> None:
    notification = make_notification(template, audience)
    mail = renderer(language).render(notification)
    assert mail.subject == f"[HD I261129_0007] {subject}"


@pytest.mark.parametrize(
    ("language", "template", "audience", "reader", "subject"),
    [
        ("fr", "help", Audience.SENDER, Role.REQUESTER, "Aide du support informatique"),
        ("en", "help", Audience.SENDER, Role.SUPERVISOR, "Helpdesk help"),
        ("fr", "list", Audience.SENDER, Role.REQUESTER, "Vos tickets en cours"),
        ("en", "list", Audience.SENDER, Role.REQUESTER, "Your open tickets"),
        ("en", "list", Audience.SENDER, Role.TECHNICIAN, "Your tickets and the pool"),
        ("fr", "list", Audience.SENDER, Role.SUPERVISOR, "Tickets ouverts"),
        (
            "en",
            "digest",
            Audience.SUPERVISOR,
            Role.SUPERVISOR,
            "Morning digest: open tickets and call-back deadlines",
        ),
    ],
)
def test_subjects_without_ticket_are_plain(
    language: str, template: str, audience: Audience, reader: Role, subject: str
) -> None:
    notification = make_notification(template, audience, ticket=None, reader=reader)
    assert renderer(language).render(notification).subject == subject


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr", "Compte rendu de vos commandes"), ("en", "Your commands")],
)
def test_transcript_without_ticket_has_no_tag(language: str, expected: str) -> None:
    notification = make_notification(
        "transcript",
        Audience.SENDER,
        ticket=None,
        results=(CommandResult("CLAIM", is_done=True),),
    )
    mail = renderer(language).render(notification)
    assert mail.subject == expected
    done = "- « CLAIM » : fait." if language == "fr" else '- "CLAIM": done.'
    assert done in mail.text
    assert '<li style="margin-bottom:4px;"><strong>CLAIM</strong>' in mail.html


@pytest.mark.parametrize(
    ("language", "empty"), [("fr", "(aucune commande)"), ("en", "(no commands)")]
)
def test_transcript_says_when_there_is_no_command(language: str, empty: str) -> None:
    notification = make_notification("transcript", Audience.SENDER, results=())
    text, html = texts(language, notification)
    assert empty in text
    assert empty in html
    text, _ = texts(language, make_notification("transcript", Audience.SENDER))
    assert empty not in text


@pytest.mark.parametrize(
    ("language", "done", "refused"),
    [
        ("fr", "« PRENDRE » : fait.", "« NOTER 9 » : refusé — la note doit être"),
        ("en", '"PRENDRE": done.', '"NOTER 9": refused — the score must be'),
    ],
)
def test_transcript_lists_results_in_order(
    language: str, done: str, refused: str
) -> None:
    text, html = texts(language, make_notification("transcript", Audience.SENDER))
    assert done in text
    assert refused in text
    assert text.index(done) < text.index(refused)
    assert "<strong>PRENDRE</strong>" in html
    assert "bad_score" not in text + html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("reason", REASONS)
def test_every_refusal_reason_is_a_sentence(language: str, reason: str) -> None:
    result = CommandResult("LINE", is_done=False, reason=reason, detail="x@example.com")
    notification = make_notification("transcript", Audience.SENDER, results=(result,))
    text, html = texts(language, notification)
    line = next(row for row in text.splitlines() if "LINE" in row)
    refused = "refusé — " if language == "fr" else "refused — "
    assert refused in line
    assert len(line.split(refused)[1]) > 20  # a real sentence, not a code
    assert reason not in text
    assert reason not in html


@pytest.mark.parametrize(
    ("language", "reason", "detail", "expected"),
    [
        ("fr", "not_owner", "bob@example.com", "(bob@example.com)"),
        ("en", "not_owner", "bob@example.com", "(bob@example.com)"),
        ("fr", "already_claimed", "bob@example.com", "par bob@example.com"),
        ("en", "already_claimed", "bob@example.com", "by bob@example.com"),
        ("fr", "wrong_state", "resolved", "à l'état « résolu »"),
        ("en", "wrong_state", "in_progress", "the ticket is in progress"),
        ("fr", "near_keyword", "RESOLU", "vouliez-vous écrire RESOLU ?"),
        ("en", "near_keyword", "RESOLVED", "did you mean RESOLVED?"),
        ("fr", "not_assignable", "eve@example.com", "eve@example.com n'est pas"),
        ("en", "not_assignable", "eve@example.com", "eve@example.com is not"),
        ("fr", "missing_score", "", "NOTER doit être suivi d'une note de 1 à 5"),
        ("en", "missing_address", "", "ASSIGN must be followed"),
    ],
)
def test_refusal_reasons_carry_their_detail(
    language: str, reason: str, detail: str, expected: str
) -> None:
    result = CommandResult("LINE", is_done=False, reason=reason, detail=detail)
    notification = make_notification("transcript", Audience.SENDER, results=(result,))
    text, html = texts(language, notification)
    assert expected in text
    assert in_html(expected, html)


@pytest.mark.parametrize(
    ("language", "held", "unknown"),
    [
        ("fr", "« LINE » : non traité.", "« ODD » : refusé."),
        ("en", '"LINE": not processed.', '"ODD": refused.'),
    ],
)
def test_held_and_unknown_reasons_say_no_more(
    language: str, held: str, unknown: str
) -> None:
    results = (
        CommandResult("LINE", is_done=False, reason="held"),
        CommandResult("ODD", is_done=False, reason="some_new_code", detail="zz"),
    )
    notification = make_notification("transcript", Audience.SENDER, results=results)
    text, html = texts(language, notification)
    assert held in text
    assert unknown in text
    assert "some_new_code" not in text + html
    assert "zz" not in text + html


@pytest.mark.parametrize(
    ("language", "moment", "expected"),
    [
        (
            "fr",
            datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
            "lundi 30 novembre 2026 à 11:30",
        ),
        (
            "en",
            datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
            "Monday 30 November 2026, 11:30",
        ),
        (
            "fr",
            datetime(2026, 6, 30, 22, 5, tzinfo=UTC),
            "mercredi 1er juillet 2026 à 00:05",
        ),  # summer time, next day
        (
            "en",
            datetime(2026, 6, 30, 22, 5, tzinfo=UTC),
            "Wednesday 1 July 2026, 00:05",
        ),
        ("fr", datetime(2027, 8, 15, 7, 0), "dimanche 15 août 2027 à 09:00"),  # noqa: DTZ001 naive means UTC
        (
            "en",
            datetime(2027, 2, 1, 17, 59, tzinfo=UTC),
            "Monday 1 February 2027, 18:59",
        ),
    ],
)
def test_format_time(language: str, moment: datetime, expected: str) -> None:
    assert renderer(language).format_time(moment) == expected


@pytest.mark.parametrize(
    ("language", "template", "promise", "marker"),
    [
        (
            "fr",
            "confirmation",
            "Un technicien vous rappellera avant le lundi 30 novembre 2026 à 11:30.",
            "rappel",
        ),
        (
            "en",
            "confirmation",
            "We will call you back before Monday 30 November 2026, 11:30.",
            "call you back",
        ),
        (
            "fr",
            "claimed",
            "tech@example.com vous rappellera avant le lundi 30 novembre 2026 à 11:30.",
            "rappel",
        ),
        (
            "en",
            "claimed",
            "tech@example.com will call you back before Monday 30 November 2026, 11:30.",  # noqa: E501
            "call you back",
        ),
    ],
)
def test_callback_deadline_only_when_set(
    language: str, template: str, promise: str, marker: str
) -> None:
    notification = make_notification(template, Audience.REQUESTER)
    mail = renderer(language).render(notification)
    assert promise in mail.text
    assert "11:30" in mail.html
    without = make_notification(
        template, Audience.REQUESTER, ticket=make_ticket(callback_due_at=None)
    )
    mail = renderer(language).render(without)
    for body in (mail.text, mail.html):
        assert marker not in body.lower()
        assert "11:30" not in body


NOT_TAKEN = [
    (
        "fr",
        "beneficiary_outside",
        "eve@outside.example",
        "L'adresse eve@outside.example n'a pas été retenue comme bénéficiaire, car "
        "elle n'appartient pas aux domaines",
    ),
    (
        "en",
        "beneficiary_outside",
        "eve@outside.example",
        "The address eve@outside.example was not taken as the beneficiary because "
        "it is outside",
    ),
    (
        "fr",
        "beneficiary_refused",
        "techniciens@example.com",
        "L'adresse techniciens@example.com n'a pas été retenue comme bénéficiaire car "
        "ce n'est pas la boîte d'une personne",
    ),
    (
        "en",
        "beneficiary_refused",
        "techniciens@example.com",
        "The address techniciens@example.com was not taken as the beneficiary because "
        "it is not a person's mailbox",
    ),
    ("fr", "beneficiary_outside", "", "L'adresse indiquée n'a pas été retenue"),
    ("en", "beneficiary_refused", "", "The address given was not taken"),
]


@pytest.mark.parametrize(("language", "field", "address", "sentence"), NOT_TAKEN)
def test_confirmation_says_why_the_beneficiary_was_not_taken(
    language: str, field: str, address: str, sentence: str
) -> None:
    notification = make_notification(
        "confirmation", Audience.REQUESTER, **{field: address}
    )
    text, html = texts(language, notification)
    assert sentence in text
    assert in_html(sentence, html)
    assert field not in text + html
    plain = texts(language, make_notification("confirmation", Audience.REQUESTER))
    assert sentence not in plain[0]
    assert ("L'adresse" if language == "fr" else "The address") not in plain[0]


@pytest.mark.parametrize(
    ("language", "announced", "released_by", "subject", "sentence"),
    [
        (
            "fr",
            notices.Announced.RELEASED,
            "tech@example.com",
            "Ticket à reprendre : Imprimante en panne",
            "tech@example.com a libéré ce ticket",
        ),
        (
            "en",
            notices.Announced.RELEASED,
            "tech@example.com",
            "Ticket released: Imprimante en panne",
            "tech@example.com has released this ticket",
        ),
        (
            "fr",
            notices.Announced.REANNOUNCED,
            "",
            "Toujours à prendre : Imprimante en panne",
            "Ce ticket n'a toujours pas été pris en charge.",
        ),
        (
            "en",
            notices.Announced.REANNOUNCED,
            "",
            "Still unclaimed: Imprimante en panne",
            "This ticket has still not been taken by anyone.",
        ),
    ],
)
def test_announcement_says_why_it_comes_again(
    language: str,
    announced: notices.Announced,
    released_by: str,
    subject: str,
    sentence: str,
) -> None:
    notification = make_notification(
        "announcement", Audience.POOL, announced=announced, released_by=released_by
    )
    mail = renderer(language).render(notification)
    assert mail.subject == f"[HD I261129_0007] {subject}"
    assert sentence in mail.text.split("\n\n")[1]  # right after the greeting
    assert in_html(sentence, mail.html)
    assert ("nouveau ticket" if language == "fr" else "new ticket") not in (
        mail.text.lower()
    )


@pytest.mark.parametrize(
    ("language", "template", "audience", "words"),
    [
        (
            "fr",
            "confirmation",
            Audience.REQUESTER,
            [
                "ACCEPTER",
                "REFUSER",
                "NOTER",
                "AIDE",
                "LISTE",
                "[HD I261129_0007]",
                "helpdesk@example.com",
            ],
        ),
        (
            "en",
            "confirmation",
            Audience.REQUESTER,
            [
                "ACCEPT",
                "REFUSE",
                "RATE",
                "HELP",
                "LIST",
                "[HD I261129_0007]",
                "helpdesk@example.com",
            ],
        ),
        (
            "fr",
            "announcement",
            Audience.POOL,
            [
                "PRENDRE",
                "photo.jpg",
                "journal.txt",
                "bourrage",
                "haute",
                "Impression",
                "01 23 45 67 89",
                "Paul Durand <paul.durand@example.com>",
            ],
        ),
        (
            "en",
            "announcement",
            Audience.POOL,
            [
                "CLAIM",
                "photo.jpg",
                "journal.txt",
                "bourrage",
                "high",
                "Impression",
                "01 23 45 67 89",
                "Paul Durand <paul.durand@example.com>",
            ],
        ),
        (
            "fr",
            "comment",
            Audience.OWNER,
            ["A remark.", "capture.png", "PRENDRE", "tech@example.com"],
        ),
        (
            "en",
            "comment",
            Audience.OWNER,
            [
                "A remark.",
                "capture.png",
                "CLAIM",
                "forwarded",
            ],
        ),
        (
            "fr",
            "comment",
            Audience.REQUESTER,
            ["A remark.", "capture.png", "tech@example.com", "[HD I261129_0007]"],
        ),
        (
            "en",
            "comment",
            Audience.REQUESTER,
            ["A remark.", "capture.png", "tech@example.com", "[HD I261129_0007]"],
        ),
        (
            "fr",
            "resolved",
            Audience.REQUESTER,
            [
                "A remark.",
                "ACCEPTER",
                "REFUSER",
                "NOTER",
                "1 à 5",
                "dans quelques jours",
            ],
        ),
        (
            "en",
            "resolved",
            Audience.REQUESTER,
            ["A remark.", "ACCEPT", "REFUSE", "RATE", "1 to 5", "in a few days"],
        ),
        (
            "fr",
            "assigned",
            Audience.OWNER,
            [
                "tech@example.com",
                "APPEL",
                "PDR",
                "TACHE",
                "RESOLU",
                "LIBERER",
                "bourrage",
                "photo.jpg",
            ],
        ),
        (
            "en",
            "assigned",
            Audience.OWNER,
            [
                "tech@example.com",
                "CALL",
                "PDR",
                "TASK",
                "RESOLVED",
                "RELEASE",
                "bourrage",
                "photo.jpg",
            ],
        ),
        (
            "fr",
            "refused",
            Audience.OWNER,
            ["A remark.", "en cours", "tech@example.com"],
        ),
        (
            "en",
            "refused",
            Audience.OWNER,
            ["A remark.", "back in progress", "tech@example.com"],
        ),
        ("fr", "accepted", Audience.OWNER, ["tech@example.com", "clos"]),
        ("en", "accepted", Audience.OWNER, ["tech@example.com", "closed"]),
        (
            "fr",
            "cancelled",
            Audience.OWNER,
            ["A remark.", "annulé", "n'est plus à prendre"],
        ),
        (
            "en",
            "cancelled",
            Audience.OWNER,
            ["A remark.", "cancelled", "no longer waiting"],
        ),
        (
            "fr",
            "closed_ticket",
            Audience.SENDER,
            ["ne sera pas rouvert", "nouveau message", "helpdesk@example.com"],
        ),
        (
            "en",
            "closed_ticket",
            Audience.SENDER,
            ["will not be reopened", "new email", "helpdesk@example.com"],
        ),
        (
            "fr",
            "reminder",
            Audience.OWNER,
            [
                "APPEL",
                "PDR",
                "lundi 30 novembre 2026 à 11:30",
                "01 23 45 67 89",
                "Paul Durand",
            ],
        ),
        (
            "en",
            "reminder",
            Audience.OWNER,
            [
                "CALL",
                "PDR",
                "Monday 30 November 2026, 11:30",
                "01 23 45 67 89",
                "Paul Durand",
            ],
        ),
        ("fr", "pdr_retry", Audience.OWNER, ["APPEL", "PDR", "01 23 45 67 89"]),
        ("en", "pdr_retry", Audience.OWNER, ["CALL", "PDR", "01 23 45 67 89"]),
        (
            "fr",
            "breach",
            Audience.SUPERVISOR,
            ["aucun", "AFFECTER", "lundi 30 novembre 2026 à 11:30"],
        ),
        (
            "en",
            "breach",
            Audience.SUPERVISOR,
            ["none", "ASSIGN", "Monday 30 November 2026, 11:30"],
        ),
        (
            "fr",
            "auto_closed",
            Audience.REQUESTER,
            ["clos automatiquement", "NOTER", "helpdesk@example.com"],
        ),
        (
            "en",
            "auto_closed",
            Audience.REQUESTER,
            ["closed automatically", "RATE", "helpdesk@example.com"],
        ),
    ],
)
def test_templates_say_what_to_do(
    language: str, template: str, audience: Audience, words: list[str]
) -> None:
    mail = renderer(language).render(make_notification(template, audience))
    for word in words:
        assert word in mail.text, word
        assert in_html(word, mail.html), word


@pytest.mark.parametrize("language", LANGUAGES)
def test_resolved_names_no_number_of_days(language: str) -> None:
    text, _ = texts(language, make_notification("resolved", Audience.REQUESTER))
    assert not re.search(r"\d+ (jours|days)", text)


@pytest.mark.parametrize(
    ("language", "owned", "unclaimed"),
    [("fr", "LIBERER", "PRENDRE"), ("en", "RELEASE", "CLAIM")],
)
def test_comment_to_owner_depends_on_the_owner(
    language: str, owned: str, unclaimed: str
) -> None:
    pool = make_notification("comment", Audience.OWNER)
    owner = make_notification(
        "comment", Audience.OWNER, ticket=make_ticket(owner="tech@example.com")
    )
    assert unclaimed in texts(language, pool)[0]
    assert owned not in texts(language, pool)[0]
    assert owned in texts(language, owner)[0]


@pytest.mark.parametrize(
    ("language", "template", "address"),
    [
        ("fr", "closed_ticket", "demandes@example.com"),
        ("en", "auto_closed", "demandes@example.com"),
    ],
)
def test_a_request_points_to_the_request_address(
    language: str, template: str, address: str
) -> None:
    audience = Audience.SENDER if template == "closed_ticket" else Audience.REQUESTER
    ticket = make_ticket(ticket_type=TicketType.REQUEST)
    text, _ = texts(language, make_notification(template, audience, ticket=ticket))
    assert address in text
    assert "helpdesk@example.com" not in text


@pytest.mark.parametrize(
    ("language", "role", "present", "absent"),
    [
        (
            "fr",
            Role.REQUESTER,
            ["ACCEPTER (ACCEPT)", "ANNULER", "LISTE"],
            ["PRENDRE", "AFFECTER"],
        ),
        (
            "en",
            Role.REQUESTER,
            ["ACCEPT (ACCEPTER)", "CANCEL", "LIST"],
            ["CLAIM", "ASSIGN"],
        ),
        (
            "fr",
            Role.TECHNICIAN,
            ["PRENDRE (CLAIM)", "APPEL", "PDR", "LIBERER", "LISTE"],
            ["AFFECTER"],
        ),
        (
            "en",
            Role.TECHNICIAN,
            ["CLAIM (PRENDRE)", "CALL", "PDR", "RELEASE", "LIST"],
            ["ASSIGN"],
        ),
        ("fr", Role.SUPERVISOR, ["AFFECTER adresse (ASSIGN)", "PRENDRE", "LISTE"], []),
        ("en", Role.SUPERVISOR, ["ASSIGN address (AFFECTER)", "CLAIM", "LIST"], []),
        ("fr", Role.WATCHER, ["ACCEPTER"], ["PRENDRE"]),
    ],
)
def test_help_fits_the_role(
    language: str, role: Role, present: list[str], absent: list[str]
) -> None:
    (notification,) = notifications_for(
        HelpAsked("paul@example.com", role, "m1@client"), "techniciens@example.com"
    )
    text, html = texts(language, notification)
    common = ["helpdesk@example.com", "demandes@example.com", "Application"]
    for word in present + common:
        assert word in text, word
        assert in_html(word, html), word
    for word in absent:
        assert word not in text, word
        assert word not in html, word


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("template", "audience"),
    [
        ("list", Audience.SENDER),
        ("digest", Audience.TECHNICIAN),
        ("digest", Audience.SUPERVISOR),
    ],
)
def test_ticket_lists_show_one_line_per_ticket(
    language: str, template: str, audience: Audience
) -> None:
    notification = make_notification(template, audience, ticket=None)
    text, html = texts(language, notification)
    rows = [row for row in text.splitlines() if row.startswith("- I261129_0007")]
    assert len(rows) == 1
    state, urgency = ("nouveau", "haute") if language == "fr" else ("new", "high")
    for word in (state, urgency, "11:30", "Imprimante en panne"):
        assert word in rows[0], word
    other = next(row for row in text.splitlines() if row.startswith("- S261129_0002"))
    assert "tech@example.com" in other
    assert "<td" in html
    assert "S261129_0002" in html


@pytest.mark.parametrize(
    ("language", "reader", "empty"),
    [
        ("fr", Role.REQUESTER, "Vous n'avez aucun ticket en cours."),
        ("en", Role.REQUESTER, "You have no open tickets."),
        ("fr", Role.SUPERVISOR, "Aucun ticket n'est ouvert."),
        ("en", Role.TECHNICIAN, "You have no open tickets and none is waiting"),
    ],
)
def test_empty_list_says_so(language: str, reader: Role, empty: str) -> None:
    notification = make_notification("list", Audience.SENDER, tickets=(), reader=reader)
    text, html = texts(language, notification)
    assert empty in text
    assert in_html(empty, html)
    assert "<table" not in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_supervisor_digest_shows_summary_lines(language: str) -> None:
    notification = make_notification(
        "digest", Audience.SUPERVISOR, summary_lines=("3 tickets en retard",)
    )
    text, html = texts(language, notification)
    assert "- 3 tickets en retard" in text
    assert "3 tickets en retard" in html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("template", "audience"), ALL_TEMPLATES)
def test_hostile_values_are_escaped_in_html(
    language: str, template: str, audience: Audience
) -> None:
    hostile_person = Person(f"Eve {HOSTILE}", "eve@example.com")
    ticket = make_ticket(
        subject=f"Hello {HOSTILE}\r\nBcc: victim@example.org",
        description=f"<img src=x onerror=alert(1)> {HOSTILE}",
        requester=hostile_person,
        beneficiary=hostile_person,
        application=HOSTILE,
        phone="<b>0</b>",
        owner=HOSTILE,
        watchers=(hostile_person,),
        attachment_names=(f"{HOSTILE}.pdf",),
    )
    results = tuple(
        CommandResult(HOSTILE, is_done=False, reason=reason, detail=HOSTILE)
        for reason in REASONS
    )
    notice = filled_notice(
        template,
        ticket if (template, audience) in TICKET_TEMPLATES else None,
        HOSTILE,
        results,
        (ticket,),
    )
    if isinstance(notice, notices.Announcement):  # the one that shows released_by
        notice = replace(notice, announced=notices.Announced.RELEASED)
    notification = replace(
        make_notification(template, audience, notice=notice),
        attachments=(Attachment(f"{HOSTILE}.png", "image/png", b""),),
    )
    mail = renderer(language).render(notification)
    assert "<script" not in mail.html
    assert "<img" not in mail.html
    assert "<b>0</b>" not in mail.html
    if template not in ("help", "not_applied"):  # they show nothing from a mail
        assert "&lt;script&gt;" in mail.html
    assert not re.search(r"[\r\n\v\f\x85\u2028\u2029]", mail.subject)
    assert "\nBcc:" not in mail.subject


@pytest.mark.parametrize(
    ("attachments", "names"),
    [
        ((), ()),
        ((Attachment("a.pdf", "application/pdf", b""),), ("a.pdf",)),
        ((Attachment("", "image/png", b"", is_inline=True),), ()),
        ((Attachment("two\nlines.txt", "text/plain", b""),), ("two lines.txt",)),
    ],
)
def test_attachment_names(
    attachments: tuple[Attachment, ...], names: tuple[str, ...]
) -> None:
    assert attachment_names(attachments) == names


@pytest.mark.parametrize(
    "brk", ["\r", "\n", "\r\n", "\v", "\f", "\x85", "\u2028", "\u2029", "\x00"]
)
def test_subject_loses_every_line_break(brk: str) -> None:
    subject = tagged_subject("HD", "I261129_0007", f"Imprimante{brk}Bcc: x@y.org")
    assert subject == "[HD I261129_0007] Imprimante Bcc: x@y.org"


@pytest.mark.parametrize(
    ("tag", "number", "text", "expected"),
    [
        (
            "HD",
            "I261129_0007",
            "Imprimante en panne",
            "[HD I261129_0007] Imprimante en panne",
        ),
        ("HD", "", "Your commands", "Your commands"),
        ("HD", "S261129_0001", "  spaced \t out  ", "[HD S261129_0001] spaced out"),
        (
            "HD",
            "I261129_0007",
            "[HD I261129_0007] already tagged",
            "[HD I261129_0007] already tagged",
        ),
        ("IT-2", "I261129_0007", "x", "[IT-2 I261129_0007] x"),
    ],
)
def test_tagged_subject(tag: str, number: str, text: str, expected: str) -> None:
    assert tagged_subject(tag, number, text) == expected


def test_long_subject_is_capped_and_keeps_the_tag() -> None:
    subject = tagged_subject("HD", "I261129_0007", "é" * 1000)
    assert len(subject) == SUBJECT_MAX
    assert subject.startswith("[HD I261129_0007] éé")
    assert subject.endswith("…")


def test_rendered_long_subject_is_capped() -> None:
    ticket = make_ticket(subject="panne " * 200)
    notification = make_notification("confirmation", Audience.REQUESTER, ticket=ticket)
    assert len(renderer("fr").render(notification).subject) <= SUBJECT_MAX


def write_templates(
    folder: Path, txt: str, html: str = "<p>{{ ticket_tag }}</p>"
) -> Path:
    (folder / "fr").mkdir(parents=True)
    (folder / "fr" / "probe.sender.txt.j2").write_text(txt, encoding="utf-8")
    (folder / "fr" / "probe.sender.html.j2").write_text(html, encoding="utf-8")
    return folder


def test_strict_undefined_catches_a_missing_variable(tmp_path: Path) -> None:
    folder = write_templates(
        tmp_path, "{% set subject %}x{% endset %}{{ no_such_variable }}\n"
    )
    with pytest.raises(jinja2.UndefinedError):
        renderer("fr", folder).render(make_notification("probe", Audience.SENDER))


def test_strict_undefined_catches_a_missing_attribute(tmp_path: Path) -> None:
    folder = write_templates(
        tmp_path, "{% set subject %}{{ ticket.no_such_field }}{% endset %}\n"
    )
    with pytest.raises(jinja2.UndefinedError):
        renderer("fr", folder).render(make_notification("probe", Audience.SENDER))


def test_a_template_without_subject_is_an_error(tmp_path: Path) -> None:
    folder = write_templates(tmp_path, "body only\n")
    with pytest.raises(jinja2.TemplateRuntimeError, match="sets no subject"):
        renderer("fr", folder).render(make_notification("probe", Audience.SENDER))


def test_txt_is_not_escaped_and_html_is(tmp_path: Path) -> None:
    folder = write_templates(
        tmp_path,
        "{% set subject %}{{ comment }}{% endset %}{{ comment }}\n",
        "<p>{{ comment }}</p>",
    )
    notification = make_notification(
        "probe",
        Audience.SENDER,
        notice=notices.Comment(make_ticket(), author="", comment="a < b & c"),
    )
    mail = renderer("fr", folder).render(notification)
    assert mail.subject == "[HD I261129_0007] a < b & c"
    assert mail.text == "a < b & c\n"
    assert mail.html == "<p>a &lt; b &amp; c</p>"


@pytest.mark.parametrize("name", ["../fr/confirmation", "Confirmation", "a/b", ""])
def test_template_names_cannot_leave_the_folder(name: str) -> None:
    with pytest.raises(ValueError, match="bad template name"):
        renderer("fr").render(make_notification(name, Audience.REQUESTER))


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        renderer("de")


def test_no_template_marks_mail_data_safe() -> None:
    files = sorted(TEMPLATE_DIR.glob("*/*.j2"))
    assert files
    for path in files:
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b", source), path
        assert "autoescape false" not in source, path


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_template_file_is_tested(language: str) -> None:
    stems = {
        path.name.removesuffix(".txt.j2")
        for path in (TEMPLATE_DIR / language).glob("*.txt.j2")
        if not path.name.startswith("_")
    }
    assert stems == {f"{name}.{audience.value}" for name, audience in ALL_TEMPLATES}
    for stem in stems:
        assert (TEMPLATE_DIR / language / f"{stem}.html.j2").is_file(), stem


@pytest.mark.parametrize("language", LANGUAGES)
def test_not_applied_names_nothing_of_the_ticket(language: str) -> None:
    """Need to know: the answer to a stranger shows nothing it is given."""
    notification = make_notification("not_applied", Audience.SENDER)
    mail = renderer(language).render(notification)
    for part in (mail.subject, mail.text, mail.html):
        assert "A remark." not in part  # nor any other value given
        assert "tech@example.com" not in part


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["was not opened as a ticket", "20 tickets in the last hour"]),
        ("fr", ["n'a pas été ouvert en ticket", "20 tickets dans l'heure"]),
    ],
)
def test_new_ticket_held_says_why(language: str, words: list[str]) -> None:
    notification = make_notification(
        "new_ticket_held", Audience.SENDER, opened_last_hour=20
    )
    mail = renderer(language).render(notification)
    assert "A remark." in mail.subject  # the held mail's subject
    for word in words:
        assert word in mail.text
        assert in_html(word, mail.html)


def test_no_notice_field_shadows_a_variable_of_the_renderer() -> None:
    kinds = [
        kind
        for kind in vars(notices).values()
        if isinstance(kind, type) and issubclass(kind, Notice) and kind is not Notice
    ]
    assert len(kinds) == 18
    for kind in kinds:
        names = {field.name for field in dataclass_fields(kind)}
        assert not names & RENDERER_NAMES, kind


@pytest.mark.parametrize(("template", "audience"), ALL_TEMPLATES)
def test_a_notice_gives_its_ticket_to_the_subject(
    template: str, audience: Audience
) -> None:
    notification = make_notification(template, audience)
    has_ticket = any(f.name == "ticket" for f in dataclass_fields(notification.notice))
    assert (notification.ticket is not None) is has_ticket


def test_fr_and_en_have_the_same_templates() -> None:
    names = {
        lang: sorted(p.name for p in (TEMPLATE_DIR / lang).glob("*.j2"))
        for lang in ("fr", "en")
    }
    assert names["fr"] == names["en"]


@pytest.mark.parametrize(
    ("language", "warning"),
    [
        ("en", "Sender not verified: the mail server did not vouch for"),
        ("fr", "Expéditeur non vérifié : le serveur ne garantit pas l'adresse"),
    ],
)
def test_the_pool_sees_why_a_new_tickets_sender_is_unverified(
    language: str, warning: str
) -> None:
    held = make_ticket(unverified_sender="dmarc=fail")
    notification = make_notification("announcement", Audience.POOL, ticket=held)
    text, html = texts(language, notification)
    said = f"{warning} jeanne.martin@example.com (dmarc=fail)"
    assert said in text
    assert in_html("dmarc=fail", html)
    assert in_html(warning.split(":")[0], html)
    assert_clean(text)
    plain, _ = texts(language, make_notification("announcement", Audience.POOL))
    assert warning not in plain
    assert "dmarc" not in plain
