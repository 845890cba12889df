"""Notify step: render a Notification into subject, text and HTML. Reads template files.

Templates live in `<template_dir>/<language>/<template>.<audience>.{txt,html}.j2`.
The shipped ones are package data (`maild/templates` in an installed wheel,
the top-level `templates/` of a checkout: `shipped_template_dir`); an
operator's folder (`[templates] dir`) is searched first, so a file there
replaces the shipped one of the same name and language, partials included.
The text template sets the subject with `{% set subject %}…{% endset %}`; the
renderer prefixes it with `[TAG NUMBER]` when there is a ticket, removes every
line break from it and caps its length. HTML templates are autoescaped: no
value taken from a mail may ever go through `|safe`.

Filters available to templates:
- `when`: an aware datetime shown in the helpdesk's time zone, in the language
  ("lundi 30 novembre 2026 à 11:30", "Monday 30 November 2026, 11:30");
- `label`: the word for a TicketType, Urgency or TicketState in the language;
- `person`: a Person as "Name <address>" (or the bare address).

Variables: the fields of the notification's notice (core/notices.py), under
their own names, and `ticket` (the notice's, or None when it names none);
then what the renderer knows itself: `tag`, `ticket_tag` ("[TAG NUMBER]", or
""), `helpdesk` (HelpdeskAddresses: its addresses and `name`, "" unless the
configuration names the desk: templates sign `helpdesk.name or "IT Helpdesk"`)
and `attachments` (the names of the files the mail carries); HTML also
`mail_subject`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import jinja2

from maild.domain import (
    Attachment,
    Notification,
    Person,
    TicketState,
    TicketType,
    Urgency,
)


def shipped_template_dir() -> Path:
    """Find the templates maild ships: package data, else the checkout's folder."""
    packaged = resources.files("maild") / "templates"  # where the wheel puts them
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


TEMPLATE_DIR: Final = shipped_template_dir()
LANGUAGES: Final = ("fr", "en")
SUBJECT_MAX: Final = 200
# What the renderer gives every template besides the notice's fields: no
# notice may have a field of these names (a test checks it).
RENDERER_NAMES: Final = frozenset(
    {"tag", "ticket_tag", "helpdesk", "attachments", "mail_subject"}
)

_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Every character Python's str.splitlines() treats as a line boundary, and NUL.
_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00]")
_SPACES = re.compile(r"\s+")

_DAYS: Final = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": (
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ),
}
_MONTHS: Final = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_LABELS: Final[dict[str, dict[StrEnum, str]]] = {
    "fr": {
        TicketType.INCIDENT: "incident",
        TicketType.REQUEST: "demande",
        Urgency.LOW: "basse",
        Urgency.MEDIUM: "moyenne",
        Urgency.HIGH: "haute",
        TicketState.NEW: "nouveau",
        TicketState.IN_PROGRESS: "en cours",
        TicketState.RESOLVED: "résolu",
        TicketState.CLOSED: "clos",
    },
    "en": {
        TicketType.INCIDENT: "incident",
        TicketType.REQUEST: "service request",
        Urgency.LOW: "low",
        Urgency.MEDIUM: "medium",
        Urgency.HIGH: "high",
        TicketState.NEW: "new",
        TicketState.IN_PROGRESS: "in progress",
        TicketState.RESOLVED: "resolved",
        TicketState.CLOSED: "closed",
    },
}


@dataclass(frozen=True, slots=True)
class HelpdeskAddresses:
    """What templates say about the helpdesk itself."""

    incident_address: str
    request_address: str
    pool_address: str
    timezone: str = "Europe/Paris"  # times are shown in this zone
    name: str = ""  # [helpdesk] name; "": the templates' own words


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str  # final: tagged, one line, capped
    text: str
    html: str


class TemplateRenderer:
    """Render notifications with the templates of one language.

    override_dir: an operator's folder, searched before template_dir.
    """

    def __init__(
        self,
        template_dir: Path,
        language: str,
        tag: str,
        helpdesk: HelpdeskAddresses,
        override_dir: Path | None = None,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"no templates for language {language!r}")
        self._language = language
        self._tag = tag
        self._helpdesk = helpdesk
        self._zone = ZoneInfo(helpdesk.timezone)
        shipped = jinja2.FileSystemLoader(template_dir / language)
        loader: jinja2.BaseLoader = shipped
        if override_dir is not None:
            operator = jinja2.FileSystemLoader(override_dir / language)
            loader = jinja2.ChoiceLoader([operator, shipped])
        self._env = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False
            ),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # read once: no stat of every template per mail
        )
        self._env.filters["when"] = self.format_time
        self._env.filters["label"] = self.label
        self._env.filters["person"] = format_person

    def render(self, notification: Notification) -> RenderedMail:
        """Render the subject, text and HTML of one notification."""
        stem = _stem(notification)
        context = self._context(notification)
        module = self._env.get_template(f"{stem}.txt.j2").make_module(context)
        raw_subject = getattr(module, "subject", None)
        if raw_subject is None:
            raise jinja2.TemplateRuntimeError(f"{stem}.txt.j2 sets no subject")
        number = notification.ticket.number if notification.ticket else ""
        subject = tagged_subject(self._tag, number, str(raw_subject))
        html = self._env.get_template(f"{stem}.html.j2").render(
            context, mail_subject=subject
        )
        return RenderedMail(subject=subject, text=str(module), html=html)

    def format_time(self, moment: datetime) -> str:
        """Show an instant in the helpdesk's zone, written out in the language."""
        if moment.tzinfo is None:  # stored naive means UTC
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(self._zone)
        day = _DAYS[self._language][local.weekday()]
        month = _MONTHS[self._language][local.month - 1]
        clock = f"{local.hour:02d}:{local.minute:02d}"
        if self._language == "fr":
            number = "1er" if local.day == 1 else str(local.day)
            return f"{day} {number} {month} {local.year} à {clock}"
        return f"{day} {local.day} {month} {local.year}, {clock}"

    def label(self, value: StrEnum) -> str:
        """Name a ticket type, urgency or state in the language."""
        return _LABELS[self._language].get(value, str(value))

    def _context(self, notification: Notification) -> dict[str, Any]:
        notice = notification.notice
        ticket = notification.ticket
        return {
            "ticket": ticket,
            **{field.name: getattr(notice, field.name) for field in fields(notice)},
            "tag": self._tag,
            "ticket_tag": f"[{self._tag} {ticket.number}]" if ticket else "",
            "helpdesk": self._helpdesk,
            "attachments": attachment_names(notification.attachments),
        }


def export_templates(target: Path, *, force: bool = False) -> list[Path]:
    """Copy the shipped templates into target/<language>/; return the files written.

    FileExistsError, before anything is written, if one is there and not force.
    """
    sources = sorted(shipped_template_dir().glob("*/*.j2"))
    pairs = [(path, target / path.parent.name / path.name) for path in sources]
    existing = [copy for _, copy in pairs if copy.exists()]
    if existing and not force:
        raise FileExistsError(
            f"{len(existing)} files exist already, e.g. {existing[0]}"
        )
    for source, copy in pairs:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    return [copy for _, copy in pairs]


def tagged_subject(tag: str, number: str, text: str) -> str:
    """Build the one-line subject `[TAG NUMBER] text`, capped at SUBJECT_MAX."""
    prefix = f"[{tag} {number}] " if number else ""
    clean = one_line(text)
    if prefix and clean.startswith(prefix):  # the template already wrote it
        clean = clean[len(prefix) :]
    room = SUBJECT_MAX - len(prefix)
    if len(clean) > room:
        clean = clean[: room - 1].rstrip() + "…"
    return (prefix + clean).strip()


def one_line(value: str) -> str:
    """Replace every line break (and NUL) by a space and collapse the spaces."""
    return _SPACES.sub(" ", _BREAKS.sub(" ", value)).strip()


def format_person(person: Person) -> str:
    """Write a person as `Name <address>`, or the bare address without a name."""
    name = one_line(person.name)
    return f"{name} <{person.address}>" if name else person.address


def attachment_names(attachments: tuple[Attachment, ...]) -> tuple[str, ...]:
    """Name the attachments a mail carries, on one line each; nameless ones go."""
    names = (one_line(attachment.filename) for attachment in attachments)
    return tuple(name for name in names if name)


def _stem(notification: Notification) -> str:
    # Names come from core/notify.py, not from mail; checked so that a slip can
    # never reach outside the template folder.
    if not _NAME.fullmatch(notification.template):
        raise ValueError(f"bad template name {notification.template!r}")
    return f"{notification.template}.{notification.audience.value}"
