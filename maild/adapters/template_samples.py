"""Check step for templates: every template rendered on sample values. No I/O
beyond reading the templates.

`maild check-config` renders, in both languages, every template for every
audience, and each variant its words depend on (with and without a ticket,
every reader of HELP and LIST, every transcript reason, every refusal, a
notice with empty texts), so that an operator's template that fails on one
of them is found before a mail needs it. The samples are what core/notify.py
could give; `tests/adapters/test_operator_templates.py` checks that they
reach every shipped template.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import jinja2

from maild.adapters.templates import LANGUAGES, TEMPLATE_DIR, TemplateRenderer
from maild.core import notices
from maild.core.commands import LineProblem
from maild.core.limits import REFUSAL_REASONS
from maild.core.permissions import RefusalReason
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

_ME = "alice@example.com"
_TEXT = "Le toner est remplacé.\nMerci."
TICKET = TicketView(
    number="I261130_0007",
    ticket_type=TicketType.INCIDENT,
    status=TicketState.IN_PROGRESS,
    subject="Imprimante en panne",
    description="L'imprimante du 2e étage affiche « bourrage ».\nMerci.",
    requester=Person("Jeanne Martin", "jeanne.martin@example.com"),
    beneficiary=Person("Paul Durand", "paul.durand@example.com"),
    application="Impression",
    urgency=Urgency.HIGH,
    phone="01 23 45 67 89",
    owner=_ME,
    created_at=datetime(2026, 11, 30, 8, 12, tzinfo=UTC),
    callback_due_at=datetime(2026, 11, 30, 9, 12, tzinfo=UTC),
    watchers=(Person("Chef", "chef@example.com"),),
    attachment_names=("photo.jpg",),
    first_call_at=datetime(2026, 11, 30, 8, 40, tzinfo=UTC),
)
# The least a ticket has: a service request nobody took, no optional field.
BARE_TICKET = replace(
    TICKET,
    number="S261130_0002",
    ticket_type=TicketType.REQUEST,
    status=TicketState.NEW,
    requester=Person("", "paul.durand@example.com"),
    beneficiary=Person("", "paul.durand@example.com"),
    application="",
    urgency=Urgency.LOW,
    phone="",
    owner=None,
    callback_due_at=None,
    watchers=(),
    attachment_names=(),
    first_call_at=None,
)
_READERS = (Role.REQUESTER, Role.TECHNICIAN, Role.SUPERVISOR)
_REASONS = (
    *(reason.value for reason in RefusalReason),
    *(problem.value for problem in LineProblem),
    "unverified_sender",
    "held",
)


def _results(detail: str) -> tuple[CommandResult, ...]:
    """A command done, then one refused for every reason a transcript explains."""
    refused = (CommandResult(f"CMD {r}", False, r, detail) for r in _REASONS)
    return (CommandResult("CLAIM", True), *refused)


def _ticket_notices(ticket: TicketView) -> Iterator[tuple[str, Audience, Notice]]:
    yield "confirmation", Audience.REQUESTER, notices.Confirmation(ticket)
    yield "confirmation", Audience.REQUESTER, notices.Confirmation(ticket, "x@y.org")
    yield "confirmation", Audience.REQUESTER, notices.Confirmation(ticket, None, "")
    for why in notices.Announced:
        announced = notices.Announcement(ticket, why, _ME)
        yield "announcement", Audience.POOL, announced
    for audience in (Audience.OWNER, Audience.REQUESTER):
        yield "comment", audience, notices.Comment(ticket, _ME, _TEXT)
    yield "claimed", Audience.REQUESTER, notices.Claimed(ticket, _ME)
    yield "resolved", Audience.REQUESTER, notices.Resolved(ticket, _ME, _TEXT)
    yield "assigned", Audience.OWNER, notices.Assigned(ticket, "chef@example.com")
    yield "refused", Audience.OWNER, notices.Refused(ticket, _ME, _TEXT)
    yield "accepted", Audience.OWNER, notices.Accepted(ticket, _ME, _TEXT)
    yield "cancelled", Audience.OWNER, notices.Cancelled(ticket, _ME, _TEXT)
    for template, audience in (
        ("closed_ticket", Audience.SENDER),
        ("reminder", Audience.OWNER),
        ("pdr_retry", Audience.OWNER),
        ("breach", Audience.SUPERVISOR),
        ("auto_closed", Audience.REQUESTER),
    ):
        yield template, audience, notices.AboutTicket(ticket)
    yield "transcript", Audience.SENDER, notices.Transcript(ticket, _results(_ME))
    failed = notices.DeliveryFailed(ticket, "550 5.1.1 unknown", (_ME,), "Re: x")
    yield "delivery_failed", Audience.SUPERVISOR, failed


def _other_notices() -> Iterator[tuple[str, Audience, Notice]]:
    tickets = (TICKET, BARE_TICKET)
    for reader in _READERS:
        yield "help", Audience.SENDER, notices.Help(reader)
        yield "list", Audience.SENDER, notices.TicketList(reader, tickets)
    yield "transcript", Audience.SENDER, notices.Transcript(None, _results(""))
    for audience in (Audience.TECHNICIAN, Audience.SUPERVISOR):
        yield "digest", audience, notices.Digest(tickets, ("CLAIM: 3",))
    for reason in sorted(REFUSAL_REASONS):
        yield "rejected", Audience.SENDER, notices.Rejected("Photos", reason)
    yield "not_applied", Audience.SENDER, notices.NotApplied()
    yield "new_ticket_held", Audience.SENDER, notices.NewTicketHeld("Encore", 20)
    failed = notices.DeliveryFailed(None, "550 5.1.1 unknown", (_ME,), "Aide")
    yield "delivery_failed", Audience.SUPERVISOR, failed


def _emptied(notice: Notice) -> Notice:
    """The notice with every text and list of its own empty: "not known"."""
    changes: dict[str, object] = {}
    for field in fields(notice):
        value = getattr(notice, field.name)
        if isinstance(value, str) and not isinstance(value, Enum):  # not a code
            changes[field.name] = ""
        elif isinstance(value, tuple):
            changes[field.name] = ()
    return replace(notice, **changes)


def sample_notifications() -> tuple[Notification, ...]:
    """Every template and audience, with each variant of its notice."""
    samples = [
        *_ticket_notices(TICKET),
        *_ticket_notices(BARE_TICKET),
        *_other_notices(),
    ]
    samples += [(t, a, _emptied(n)) for t, a, n in samples]
    attachment = (Attachment("capture.png", "image/png", b"png"),)
    return tuple(
        Notification(t, a, (_ME,), n, attachments=attachment) for t, a, n in samples
    )


# What a template can raise while rendering: Jinja's errors, and what an
# operator's expression can do wrong ({{ 1 / 0 }}, a filter given None).
_RENDER_ERRORS = (
    jinja2.TemplateError,
    ArithmeticError,
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class TemplateFailure:
    """A template that does not render, e.g. `fr/confirmation.requester.txt.j2`."""

    template: str
    error: str

    def __str__(self) -> str:
        return f"{self.template}: {self.error}"


def check_templates(
    make_renderer: Callable[[str], TemplateRenderer],
) -> list[TemplateFailure]:
    """Render every sample in both languages; return the failures, one a file."""
    failures: dict[str, TemplateFailure] = {}
    for language in LANGUAGES:
        renderer = make_renderer(language)
        for notification in sample_notifications():
            try:
                renderer.render(notification)
            except _RENDER_ERRORS as exc:
                failure = _failure(language, notification, exc)
                failures.setdefault(failure.template, failure)
    return list(failures.values())


def strays(override_dir: Path) -> list[str]:
    """The operator's templates that replace no shipped one: a misspelt name is
    never used. Partials (`_name`) are the operator's own to include."""
    shipped = {f"{p.parent.name}/{p.name}" for p in TEMPLATE_DIR.glob("*/*.j2")}
    theirs = (p for p in override_dir.glob("*/*.j2") if not p.name.startswith("_"))
    return sorted({f"{p.parent.name}/{p.name}" for p in theirs} - shipped)


def _failure(
    language: str, notification: Notification, exc: Exception
) -> TemplateFailure:
    """Name the file at fault (where the error is, else the one rendered) and why."""
    stem = f"{notification.template}.{notification.audience.value}"
    name, line = _where(exc) or (f"{stem}.txt.j2", 0)
    if isinstance(exc, jinja2.TemplateNotFound):
        error = f"includes {exc.name!r}, which is no template"
    elif isinstance(exc, jinja2.TemplateError):
        error = exc.message or type(exc).__name__
    else:
        error = f"{type(exc).__name__}: {exc}"
    where = f" (line {line})" if line else ""
    return TemplateFailure(f"{language}/{name}", error + where)


def _where(exc: Exception) -> tuple[str, int] | None:
    """The template and line an error comes from: its innermost template frame."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.name:
        return exc.name, exc.lineno
    found = None
    step = exc.__traceback__
    while step is not None:
        frame = step.tb_frame
        # Template code runs with its Template in its globals; a traceback
        # Jinja has rewritten instead has frames named after the file.
        template = frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template) and template.name:
            found = template.name, template.get_corresponding_lineno(step.tb_lineno)
        elif frame.f_code.co_filename.endswith(".j2"):
            found = Path(frame.f_code.co_filename).name, step.tb_lineno
        step = step.tb_next
    return found
