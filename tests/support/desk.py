"""Test support: the helpdesk in-process, on a SQLite file, with a fake clock. I/O.

`Desk(directory, extra)` writes a configuration of its own in directory
(SQLite there unless `database_url` names another database, the relay being
the SMTP sink when `sink_port` is given, else the .eml folder; `extra` is
more TOML) and builds the daemon's parts on it:
the service, its store and the outbox sender (`sender`, driven by the test:
no process, no loop). A test hands it mail directly (`mail`, `handle`, `open`),
moves its clock (`clock.now`, `later`, `at`, which also fires the due timers)
and reads back what happened: tickets and their events as `maild tickets show`
gives them, the mails, the outbox rows, what was queued for whom, the answers
the ladder held.

`build_parts(...)` is the one place where the tests call daemon.build().
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from maild.adapters.database.engine import upgrade
from maild.adapters.database.models import (
    AutoAnswerRow,
    EventRow,
    MailRow,
    OutboxRow,
    TicketRow,
)
from maild.adapters.database.report import list_tickets, show_ticket
from maild.adapters.database.store import Store
from maild.adapters.outgoing.outbox import OutboxSender
from maild.config import Settings, load_settings
from maild.domain import MailDisposition, MailOrigin
from maild.runtime import daemon
from tests.support.daemon import write_config
from tests.support.factories import FakeClock

PARIS = ZoneInfo("Europe/Paris")
MON = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)  # a Monday, in business hours
MARIE = "marie@example.com"
HELPDESK = "helpdesk@example.com"
# As `maild replay` hands a mail to the service: addressed to the helpdesk.
REPLAY = MailOrigin(source="replay", envelope_recipients=(HELPDESK,))

Json = dict[str, Any]


def build_parts(
    settings: Settings, clock: Callable[[], datetime], *, parse_workers: int = 1
) -> daemon.Parts:
    """The daemon's parts on settings and clock: the tests' one call of build()."""
    return daemon.build(settings, clock, parse_workers=parse_workers)


class Desk:
    """The service on a SQLite file, mail handed to it directly, time faked."""

    def __init__(
        self,
        directory: Path,
        extra: str = "",
        *,
        language: str = "en",
        now: datetime = MON,
        sink_port: int | None = None,
        database_url: str = "",
        parse_workers: int = 1,
    ) -> None:
        self.config, _ = write_config(
            directory,
            sink_port=sink_port,
            language=language,
            database_url=database_url,
            extra=extra,
        )
        if database_url:
            upgrade(database_url)  # build() migrates SQLite only, as `maild run`
        self.settings = load_settings(self.config)
        self.clock = FakeClock(now)
        self._parse_workers = parse_workers
        self.parts = build_parts(self.settings, self.clock, parse_workers=parse_workers)
        self.received = 0  # mails handed in, for their Message-IDs

    @property
    def store(self) -> Store:
        return self.parts.store

    @property
    def sender(self) -> OutboxSender:
        """The outbox sender, on the desk's clock; call deliver_due() to send."""
        return self.parts.outbox

    def close(self) -> None:
        self.parts.close()

    def restart(self) -> None:
        """Build the parts again on the same database: a restarted daemon."""
        self.parts.close()
        self.parts = build_parts(
            self.settings, self.clock, parse_workers=self._parse_workers
        )

    # --- mail in ------------------------------------------------------------

    def mail(
        self, sender: str, subject: str, body: str = "", *headers: str
    ) -> MailDisposition:
        """Hand the service a plain mail to the helpdesk, from sender."""
        self.received += 1
        head = "".join(f"{h}\r\n" for h in headers)
        raw = (
            f"From: {sender}\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{self.received}.{self.clock.now.timestamp()}@client>\r\n"
            f"{head}\r\n{body}\r\n"
        ).encode()
        return self.handle(raw)

    def handle(self, raw: bytes, origin: MailOrigin = REPLAY) -> MailDisposition:
        return self.parts.service.handle(raw, origin)

    def open(
        self,
        subject: str = "Printer broken",
        body: str = "Nothing prints.",
        sender: str = MARIE,
        *headers: str,
    ) -> str:
        """Open a ticket by mail; return its number."""
        self.mail(sender, subject, body, *headers)
        return str(self.tickets()[-1]["number"])

    # --- time ---------------------------------------------------------------

    def later(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)

    def at(self, moment: datetime) -> int:
        """Move the clock to moment and fire the due timers; return how many."""
        self.clock.now = moment
        return self.parts.service.check_sla(moment)

    # --- what happened ----------------------------------------------------------

    def tickets(self) -> list[Json]:
        """Every ticket, oldest first, as `maild tickets list --json` gives it."""
        return list_tickets(self.store, None)

    def ticket(self, number: str) -> Json:
        """One ticket and its events, as `maild tickets show --json` gives it."""
        shown = show_ticket(self.store, number)
        assert shown is not None, f"no ticket {number}"
        return shown

    def events(self, number: str, kind: str) -> list[Json]:
        """The events of one kind on a ticket, in order."""
        return [e for e in self.ticket(number)["events"] if e["kind"] == kind]

    def event_rows(self, kind: str) -> list[EventRow]:
        """The events of one kind on any ticket, as stored."""
        with self.store.reading() as session:
            query = select(EventRow).where(EventRow.kind == kind).order_by(EventRow.id)
            return list(session.scalars(query))

    def mails(self) -> list[MailRow]:
        """Every mail handed in, in order, with its state and reason."""
        with self.store.reading() as session:
            return list(session.scalars(select(MailRow).order_by(MailRow.id)))

    def outbox(self) -> list[OutboxRow]:
        """Every queued notification, in order, sent or not."""
        with self.store.reading() as session:
            return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))

    def outbox_to(self, address: str) -> list[OutboxRow]:
        """The queued notifications that address is a recipient of, in order."""
        return [r for r in self.outbox() if address in r.recipients.split(",")]

    def queued(self) -> list[tuple[str, str]]:
        """(recipients, subject) of every queued notification, in order."""
        return [(r.recipients, subject_of(r)) for r in self.outbox()]

    def sent_to(self, address: str) -> list[str]:
        """Subjects of what was queued for address, in order."""
        return [subject_of(r) for r in self.outbox_to(address)]

    def held(self, number: str) -> list[str]:
        """Templates of the answers the ladder held back on a ticket."""
        with self.store.reading() as session:
            return list(
                session.scalars(
                    select(AutoAnswerRow.template)
                    .join(TicketRow, TicketRow.id == AutoAnswerRow.ticket_id)
                    .where(TicketRow.number == number, AutoAnswerRow.is_held)
                )
            )


def subject_of(row: OutboxRow) -> str:
    """The Subject header of a queued mail, decoded."""
    message = email.message_from_bytes(row.data, policy=email.policy.default)
    return str(message["Subject"])
