"""Bounces: which of our mails a delivery report is about, for whom, why. Pure.

A delivery status notification (RFC 3464) seldom names the mail it reports
in In-Reply-To/References; it carries it instead, whole (message/rfc822) or
its headers only (text/rfc822-headers), beside a message/delivery-status part
with the recipient, the action and the diagnostic. Exchange also lists the
original headers in its text. This reads all of that from the InboundMail
and keeps only Message-IDs of our own shape, `<24 hex>.<12 hex>@<our domain>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from maild.domain import Attachment, InboundMail

_OWN_LOCAL: Final = re.compile(r"[0-9a-f]{24}\.[0-9a-f]{12}")
_OWN_ANYWHERE: Final = re.compile(r"([0-9a-f]{24}\.[0-9a-f]{12}@[A-Za-z0-9.-]+)", re.I)
_MESSAGE_ID_FIELD: Final = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*<?([^<>\s]+@[^<>\s]+)>?[ \t\r]*$", re.I | re.M
)
_RETURNED: Final = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
_STATUS: Final = frozenset(
    {"message/delivery-status", "message/global-delivery-status"}
)
_FIELD: Final = re.compile(r"^([A-Za-z-]+):[ \t]*(.*(?:\r?\n[ \t]+.*)*)", re.M)
_MAX_REASON: Final = 300


@dataclass(frozen=True, slots=True)
class BounceFacts:
    """What a bounce says about one of our mails."""

    message_ids: tuple[str, ...]  # our Message-IDs it names, the likeliest first
    recipient: str = ""  # Final-Recipient (or Original-Recipient); "" if unknown
    reason: str = ""  # Diagnostic-Code, else Status; "" if unknown
    is_failure: bool = True  # False when every recipient is only "delayed"


def is_own_message_id(message_id: str, domain: str) -> bool:
    """Tell whether a Message-ID has the shape of those maild writes for domain."""
    local, _, right = message_id.strip().strip("<>").rpartition("@")
    return right.lower() == domain.lower() and _OWN_LOCAL.fullmatch(local) is not None


def read_bounce(mail: InboundMail, domain: str) -> BounceFacts:
    """Find the mail of ours a bounce reports, its recipient and the reason."""
    returned = [_text_of(a) for a in mail.attachments if _kind(a) in _RETURNED]
    status = "\n".join(_text_of(a) for a in mail.attachments if _kind(a) in _STATUS)
    candidates = [
        *(m for text in returned for m in _MESSAGE_ID_FIELD.findall(text)),
        *mail.thread_refs,
        *_MESSAGE_ID_FIELD.findall(mail.text),
        *(m for text in returned for m in _OWN_ANYWHERE.findall(text)),
        *_OWN_ANYWHERE.findall(mail.text),
    ]
    ours = tuple(dict.fromkeys(m for m in candidates if is_own_message_id(m, domain)))
    fields = _fields(status)
    recipient = _address(
        fields.get("final-recipient") or fields.get("original-recipient")
    )
    reason = fields.get("diagnostic-code", "") or fields.get("status", "")
    actions = {a.strip().lower() for a in _all(status, "action")}
    return BounceFacts(
        message_ids=ours,
        recipient=recipient,
        reason=_clean(reason.partition(";")[2] or reason),
        is_failure=not actions or "failed" in actions,
    )


def _kind(attachment: Attachment) -> str:
    return attachment.content_type.lower()


def _text_of(attachment: Attachment) -> str:
    return attachment.data.decode("utf-8", "replace")


def _fields(status: str) -> dict[str, str]:
    """The first value of each field of a delivery-status part, names lower-cased."""
    found: dict[str, str] = {}
    for name, value in _FIELD.findall(status):
        found.setdefault(name.lower(), value)
    return found


def _all(status: str, name: str) -> list[str]:
    return [v for n, v in _FIELD.findall(status) if n.lower() == name]


def _address(value: str | None) -> str:
    """`rfc822; <Marie@Example.com>` -> `marie@example.com`."""
    if not value:
        return ""
    address = value.partition(";")[2] or value
    return address.strip().strip("<>").strip().lower()


def _clean(text: str) -> str:
    return " ".join(text.split())[:_MAX_REASON]
