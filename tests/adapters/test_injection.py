"""Injection: nothing from a mail reaches a header maild writes, or its HTML unescaped.

A hostile mail is parsed as the daemon parses it; its subject, names, fields
and attachment names go through every template and the MIME builder; the
mail that comes out is read back and its headers compared with what maild
sets itself.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maild.adapters.outgoing.mime import build_message, safe_filename
from maild.adapters.templates import TEMPLATE_DIR, HelpdeskAddresses, TemplateRenderer
from maild.core.fields import extract_fields
from maild.core.parse import parse_mail
from maild.domain import (
    Attachment,
    Audience,
    CommandResult,
    InboundMail,
    Notification,
    OutboundMail,
    TicketState,
    TicketType,
    TicketView,
    Urgency,
)
from tests.adapters.test_templates import ALL_TEMPLATES, TICKET_TEMPLATES, filled_notice

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "hostile"
HELPDESK = HelpdeskAddresses(
    "helpdesk@example.com", "demandes@example.com", "techniciens@example.com"
)
OWN_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-maild-loop",
    "x-maild-ticket",
    "mime-version",
    "content-type",
}
BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00]")
DATE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def view_of(mail: InboundMail) -> TicketView:
    """The ticket the service would open for mail, as notifications see it."""
    fields = extract_fields(mail.text)
    return TicketView(
        number="I261130_0001",
        ticket_type=TicketType.INCIDENT,
        status=TicketState.NEW,
        subject=mail.subject,
        description=fields.description,
        requester=mail.sender,
        beneficiary=mail.sender,
        application=fields.application,
        urgency=Urgency.MEDIUM,
        phone=fields.phone,
        owner=None,
        created_at=DATE,
        callback_due_at=DATE,
        watchers=mail.cc,
        attachment_names=tuple(a.filename for a in mail.attachments),
    )


def read_back(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_only_own_headers(message: EmailMessage) -> None:
    names = {name.lower() for name in message}
    assert names <= OWN_HEADERS, names - OWN_HEADERS
    for name, value in message.items():
        assert not BREAKS.search(str(value)), (name, value)
    assert message.get_all("To") is not None
    assert len(message.get_all("To") or []) == 1
    for part in message.walk():
        for name in part:
            assert name.lower() in OWN_HEADERS | {
                "content-transfer-encoding",
                "content-disposition",
            }, name


@pytest.mark.parametrize(
    "name", ["injection.eml", "hostile_names.eml", "html_script.eml"]
)
@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize(("template", "audience"), ALL_TEMPLATES)
def test_mail_values_never_reach_a_header_or_unescaped_html(
    name: str, language: str, template: str, audience: Audience
) -> None:
    mail = parse_mail((HOSTILE / name).read_bytes())
    ticket = view_of(mail)
    results = (CommandResult(mail.subject, is_done=False, detail=mail.subject),)
    for value in (mail.text, mail.subject, mail.sender.name):  # each in every field
        notice = filled_notice(
            template,
            ticket if (template, audience) in TICKET_TEMPLATES else None,
            value,
            results,
            (ticket,),
        )
        notification = Notification(
            template=template,
            audience=audience,
            to=(mail.sender.address,),
            notice=notice,
            in_reply_to=mail.message_id,
            attachments=mail.attachments,
        )
        assert_safe(mail, ticket, notification, language)


def assert_safe(
    mail: InboundMail, ticket: TicketView, notification: Notification, language: str
) -> None:
    rendered = TemplateRenderer(TEMPLATE_DIR, language, "HD", HELPDESK).render(
        notification
    )
    for hostile in ("<script", "<b>body", "<img", "javascript:"):
        assert hostile not in rendered.html
    outbound = OutboundMail(
        message_id="0123456789abcdef01234567.0123456789ab@example.com",
        to=(mail.sender.address,),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        in_reply_to=mail.message_id,
        references=(*mail.references, mail.message_id),
        ticket_number=ticket.number,
        attachments=mail.attachments,
    )
    message = read_back(
        build_message(outbound, "helpdesk@example.com", mail.sender.name)
    )
    assert_only_own_headers(message)
    assert message["To"] == mail.sender.address
    for attachment in message.iter_attachments():
        filename = attachment.get_filename() or ""
        assert "/" not in filename
        assert "\\" not in filename


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("/etc/cron.d/maild", "_etc_cron.d_maild"),
        ("..\\..\\windows\\evil.dll", ".._.._windows_evil.dll"),
        ("nul\x00byte.txt", "nul byte.txt"),
        ("a" * 1000, "a" * 200),
        ("CON", "CON"),  # a name on a Windows reader's disk: the reader's concern
        ("\u2025\u2215etc\u2215passwd", "\u2025_etc_passwd"),
        ("\uff0e\uff0e\uff0fsecret.txt", "\uff0e\uff0e_secret.txt"),
        ("\u202egnp.exe", "_gnp.exe"),  # shown as "exe.png" otherwise
        ("two\r\nlines.txt", "two lines.txt"),
        ("tab\there.txt", "tab_here.txt"),
        ("..", "attachment"),
        ("", "attachment"),
        ("=?utf-8?b?Li4vZXZpbA==?=", "=\u2060?utf-8?b?Li4vZXZpbA==\u2060?="),
        ("rapport d'été.pdf", "rapport d'été.pdf"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


@given(
    subject=st.text(max_size=300),
    name=st.text(max_size=100),
    filename=st.text(max_size=300),
)
def test_no_text_adds_a_header(subject: str, name: str, filename: str) -> None:
    outbound = OutboundMail(
        message_id="0123456789abcdef01234567.0123456789ab@example.com",
        to=("marie@example.com",),
        subject=subject,
        text=subject,
        html=subject,
        in_reply_to=subject,
        references=(subject,),
        ticket_number=subject,
        attachments=(Attachment(filename, subject, b"x"),),
    )
    data = build_message(outbound, "helpdesk@example.com", name)
    message = read_back(data)
    assert_only_own_headers(message)
    assert len(
        [
            line
            for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")
            if line[:1] not in (b" ", b"\t")
        ]
    ) == len(message.keys())


def test_a_hostile_subject_is_one_line_in_the_ticket_too() -> None:
    mail = parse_mail((HOSTILE / "injection.eml").read_bytes())
    assert not BREAKS.search(view_of(mail).subject)
