"""Use case: answer a mail whose subject is a command word (HELP, LIST).

HELP gets the help for the sender's role; LIST the open tickets the sender
may see (requesters: theirs; technicians: theirs and the pool; supervisors:
all), most urgent deadline first. Both in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, assert_never

from maild.app.ports import DeskSession, TicketFilter
from maild.app.queue_notifications import Outbound
from maild.app.staff import role_for_help, staff_role
from maild.config import Settings
from maild.core import notify
from maild.core.classify import CommandMail
from maild.core.commands import SubjectCommand
from maild.core.tickets import ticket_view
from maild.domain import InboundMail, Role, TicketView

LIST_LIMIT: Final = 200  # tickets in one LIST answer


class AnswerCommandMail:
    def __init__(self, settings: Settings, outbound: Outbound) -> None:
        self.settings = settings
        self.outbound = outbound

    def answer(
        self, tx: DeskSession, mail: InboundMail, command: CommandMail, now: datetime
    ) -> str:
        """Queue the answer; return a one-line summary for the mail record."""
        sender = mail.sender.address
        role = role_for_help(staff_role(sender, self.settings, tx.staff()))
        answer: notify.Outcome
        match command.command:
            case SubjectCommand.HELP:
                answer = notify.HelpAsked(sender, role, mail.message_id)
            case SubjectCommand.LIST:
                tickets = _open_tickets(tx, sender, role)
                answer = notify.ListAsked(sender, role, tickets, mail.message_id)
            case _:
                assert_never(command.command)
        self.outbound.queue_all(tx, answer, None, now, mail)
        return f"{command.command} answered"


def _open_tickets(tx: DeskSession, address: str, role: Role) -> tuple[TicketView, ...]:
    """The open tickets a LIST answer shows, most urgent deadline first."""
    match role:
        case Role.TECHNICIAN:
            which = TicketFilter(owner_or_pool=address)
        case Role.SUPERVISOR:
            which = TicketFilter()
        case _:
            which = TicketFilter(party=address)
    return tuple(
        ticket_view(t, tx.watchers(t.id), tx.attachment_names(t.id))
        for t in tx.tickets(which, LIST_LIMIT)
    )
