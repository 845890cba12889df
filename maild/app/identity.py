"""The sender's identity as the desk's settings judge it, and the log line
when the trusted MTA did not vouch for it. No I/O but the log."""

from __future__ import annotations

import logging

from maild.config import Settings
from maild.core.identity import IdentityCheck, check_sender
from maild.domain import InboundMail

log = logging.getLogger(__name__)


def sender_identity(
    settings: Settings, mail: InboundMail, ticket: str
) -> IdentityCheck:
    """Check a mail's From against the trusted Authentication-Results; log a
    refusal with the ticket it is about."""
    identity = check_sender(
        mail.sender.address, mail.authentication_results, settings.trusted_authserv_ids
    )
    if not identity.is_verified:
        log.warning(
            "sender not verified",
            extra={
                "ticket": ticket,
                "sender": mail.sender.address,
                "msgid": mail.message_id,
                "reason": identity.detail,
            },
        )
    return identity
