"""Robots' addresses: which mail must never be answered. Pure, no I/O.

Mail from a no-reply, bounce or mailer address (`noreply@`, `no-reply@`,
`donotreply@`, `bounce(s)@`, `mailer@`, `postmaster@`, `mailer-daemon@`,
with or without a `+tag`) is written by a program. A bounce in bare text
(no DSN structure) from such an address is a bounce (classify); anything
else from it may be a real alert and may open a ticket, but no automatic
answer goes back: nobody reads that mailbox, and its robot may answer back.
The same holds for a mail whose X-Auto-Response-Suppress asks for no
automatic answer (AutoSignals.is_answer_suppressed).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final

from maild.domain import Audience, InboundMail, Notification

_NO_REPLY: Final = re.compile(
    r"^(?:no-?reply|do-?not-?reply|bounces?|mailer|postmaster|mailer-daemon"
    r"|mail-daemon)(?:\+[^@]*)?@",
    re.I,
)
_BOUNCE_TEXT: Final = re.compile(
    r"undeliver(?:ed|able) mail|returned mail|mail delivery (?:failed|failure"
    r"|subsystem)|delivery status notification \(failure\)"
    r"|delivery (?:has )?failed|failure notice|non-?delivery",
    re.I,
)
_FIRST_CHARS: Final = 500


def is_no_reply_address(address: str) -> bool:
    """Tell whether an address belongs to a program nobody reads mail for."""
    return _NO_REPLY.match(address) is not None


def is_bare_bounce(mail: InboundMail) -> bool:
    """Tell whether a mail from a robot's address says it is a failed delivery."""
    return is_no_reply_address(mail.sender.address) and (
        _BOUNCE_TEXT.search(mail.subject) is not None
        or _BOUNCE_TEXT.search(mail.text[:_FIRST_CHARS]) is not None
    )


def is_answer_suppressed(mail: InboundMail) -> bool:
    """Tell whether no automatic answer may go to a mail's sender."""
    return mail.auto.is_answer_suppressed or is_no_reply_address(mail.sender.address)


def without_answers(
    notifications: tuple[Notification, ...], mail: InboundMail | None
) -> tuple[Notification, ...]:
    """Take the mail's sender out of the automatic answers to it, if it gets none.

    An automatic answer is a capped notification or one to the sender (the
    confirmation, transcript, help, list, closed-ticket and rejected notices);
    the others (the pool's announcement, the owner's copy) still go, and so
    does an answer to someone else (a beneficiary's confirmation).
    """
    if mail is None or not is_answer_suppressed(mail):
        return notifications
    sender = mail.sender.address.lower()
    kept: list[Notification] = []
    for note in notifications:
        if note.is_capped or note.audience is Audience.SENDER:
            to = tuple(a for a in note.to if a.lower() != sender)
            if to:
                kept.append(replace(note, to=to))
        else:
            kept.append(note)
    return tuple(kept)
