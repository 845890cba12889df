"""SMTP intake with aiosmtpd: mail in over SMTP. I/O.

Only the helpdesk's addresses are accepted as recipients. A mail is handed
to the service in an executor (the handling is blocking database work) and
answered 250 only after its effect is committed; 451 on a temporary failure
so the sending MTA retries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from maild.app.ports import MailHandler
from maild.domain import MailOrigin
from maild.errors import TransientError

log = logging.getLogger(__name__)


class IntakeHandler:
    """aiosmtpd handler: refuses foreign recipients, commits before 250."""

    def __init__(self, handler: MailHandler, addresses: frozenset[str]) -> None:
        self.handler = handler
        self.addresses = addresses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() not in self.addresses:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        origin = MailOrigin(
            source="smtp",
            envelope_sender=envelope.mail_from or "",
            envelope_recipients=tuple(a.lower() for a in envelope.rcpt_tos),
            size=len(raw),
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.handler.handle, raw, origin)
        except TransientError as exc:
            log.warning("smtp intake: temporary failure, answered 451: %s", exc)
            return "451 4.3.0 Temporary failure, please retry"
        return "250 2.0.0 Accepted"


class SmtpIntake:
    def __init__(
        self,
        handler: MailHandler,
        host: str,
        port: int,
        addresses: frozenset[str],
        max_bytes: int,
    ) -> None:
        self.controller = Controller(
            IntakeHandler(handler, addresses),
            hostname=host,
            port=port,
            data_size_limit=max_bytes,
            decode_data=False,
            server_kwargs={"ident": "maild"},
        )

    def start(self) -> None:
        try:
            self.controller.start()
        except BaseException:  # the port is taken, say: leave no loop behind
            self.controller.stop(no_assert=True)
            self.controller.loop.close()  # else it is closed at exit, noisily
            raise
        log.info(
            "smtp intake listening on %s:%s",
            self.controller.hostname,
            self.controller.port,
        )

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpIntake:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
