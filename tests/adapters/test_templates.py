"""Notification templates: every template renders in fr and en, safely."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
from markupsafe import escape

from maild.adapters.templates import (
    SUBJECT_MAX,
    TEMPLATE_DIR,
    HelpdeskAddresses,
    TemplateRenderer,
    tagged_subject,
)
from maild.domain import (
    Audience,
    Notification,
    Person,
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
TEMPLATES = [
    ("confirmation", Audience.REQUESTER),
    ("announcement", Audience.POOL),
    ("transcript", Audience.SENDER),
]
HOSTILE = "<script>alert('x')</script>"


def make_ticket(**changes: object) -> TicketView:
    ticket = TicketView(
        number="I261129_0007",
        ticket_type=TicketType.INCIDENT,
        status=TicketState.NEW,
        subject="Imprimante en panne",
        description="L'imprimante du 2e étage affiche « bourrage ».\nMerci.",
        requester=Person("Jeanne Martin", "jeanne.martin@example.com"),
        beneficiary=Person("Paul Durand", "paul.durand@example.com"),
        application="Impression",
        urgency=Urgency.HIGH,
        phone="01 23 45 67 89",
        owner=None,
        created_at=datetime(2026, 11, 30, 9, 12, tzinfo=UTC),
        callback_due_at=datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
        watchers=(Person("Chef", "chef@example.com"),),
        attachment_names=("photo.jpg", "journal.txt"),
    )
    return replace(ticket, **changes)  # type: ignore[arg-type]


def make_notification(
    template: str, audience: Audience, **changes: object
) -> Notification:
    notification = Notification(
        template=template,
        audience=audience,
        to=("jeanne.martin@example.com",),
        ticket=make_ticket(),
        lines=("CLAIM: done", "RATE 9: refused, the score goes from 1 to 5"),
        text="A remark.",
    )
    return replace(notification, **changes)  # type: ignore[arg-type]


def renderer(language: str, template_dir: Path = TEMPLATE_DIR) -> TemplateRenderer:
    return TemplateRenderer(template_dir, language, "HD", HELPDESK)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize(("template", "audience"), TEMPLATES)
def test_every_template_renders(
    language: str, template: str, audience: Audience
) -> None:
    mail = renderer(language).render(make_notification(template, audience))
    assert mail.subject.startswith("[HD I261129_0007] ")
    for body in (mail.text, mail.html):
        assert "I261129_0007" in body
        assert "{{" not in body
        assert "{%" not in body
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in mail.html
    assert mail.text.endswith("\n")


@pytest.mark.parametrize(
    ("language", "template", "audience", "subject"),
    [
        (
            "fr",
            "confirmation",
            Audience.REQUESTER,
            "[HD I261129_0007] Imprimante en panne",
        ),
        (
            "en",
            "confirmation",
            Audience.REQUESTER,
            "[HD I261129_0007] Imprimante en panne",
        ),
        (
            "fr",
            "announcement",
            Audience.POOL,
            "[HD I261129_0007] Nouveau ticket : Imprimante en panne",
        ),
        (
            "en",
            "announcement",
            Audience.POOL,
            "[HD I261129_0007] New ticket: Imprimante en panne",
        ),
        (
            "fr",
            "transcript",
            Audience.SENDER,
            "[HD I261129_0007] Re: Imprimante en panne",
        ),
        (
            "en",
            "transcript",
            Audience.SENDER,
            "[HD I261129_0007] Re: Imprimante en panne",
        ),
    ],
)
def test_subjects(
    language: str, template: str, audience: Audience, subject: str
) -> None:
    notification = make_notification(template, audience)
    assert renderer(language).render(notification).subject == subject


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr", "Compte rendu de vos commandes"), ("en", "Your commands")],
)
def test_transcript_without_ticket_has_no_tag(language: str, expected: str) -> None:
    notification = make_notification("transcript", Audience.SENDER, ticket=None)
    mail = renderer(language).render(notification)
    assert mail.subject == expected
    assert "- CLAIM: done" in mail.text
    assert '<li style="margin-bottom:4px;">CLAIM: done</li>' in mail.html
    assert "A remark." in mail.text


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
    ("language", "promise", "marker"),
    [
        (
            "fr",
            "Un technicien vous rappellera avant le lundi 30 novembre 2026 à 11:30.",
            "rappel",
        ),
        (
            "en",
            "We will call you back before Monday 30 November 2026, 11:30.",
            "call you back",
        ),
    ],
)
def test_callback_deadline_only_when_set(
    language: str, promise: str, marker: str
) -> None:
    notification = make_notification("confirmation", Audience.REQUESTER)
    mail = renderer(language).render(notification)
    assert promise in mail.text
    assert "11:30" in mail.html
    without = replace(notification, ticket=make_ticket(callback_due_at=None))
    mail = renderer(language).render(without)
    for body in (mail.text, mail.html):
        assert marker not in body.lower()
        assert "11:30" not in body


@pytest.mark.parametrize("language", ["fr", "en"])
def test_note_paragraph_only_when_set(language: str) -> None:
    note = "beneficiary outside the accepted domains: not taken"
    with_note = make_notification("confirmation", Audience.REQUESTER, note=note)
    mail = renderer(language).render(with_note)
    assert note in mail.text
    assert note in mail.html
    without = renderer(language).render(
        make_notification("confirmation", Audience.REQUESTER)
    )
    assert note not in without.text
    assert ("Remarque" if language == "fr" else "Please note") not in without.text


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
    ],
)
def test_templates_say_what_to_do(
    language: str, template: str, audience: Audience, words: list[str]
) -> None:
    mail = renderer(language).render(make_notification(template, audience))
    for word in words:
        assert word in mail.text
        assert escape(word) in mail.html


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize(("template", "audience"), TEMPLATES)
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
        watchers=(hostile_person,),
        attachment_names=(f"{HOSTILE}.pdf",),
    )
    notification = make_notification(
        template, audience, ticket=ticket, note=HOSTILE, text=HOSTILE, lines=(HOSTILE,)
    )
    mail = renderer(language).render(notification)
    assert "<script" not in mail.html
    assert "<img" not in mail.html
    assert "<b>0</b>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert not re.search(r"[\r\n\v\f\x85\u2028\u2029]", mail.subject)
    assert "\nBcc:" not in mail.subject


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
        "{% set subject %}{{ note }}{% endset %}{{ note }}\n",
        "<p>{{ note }}</p>",
    )
    notification = make_notification("probe", Audience.SENDER, note="a < b & c")
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


def test_fr_and_en_have_the_same_templates() -> None:
    names = {
        lang: sorted(p.name for p in (TEMPLATE_DIR / lang).glob("*.j2"))
        for lang in ("fr", "en")
    }
    assert names["fr"] == names["en"]
