"""HandleMail: every mail ends once as a ticket, an event, ignored or quarantined."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from maild.adapters.memory import KeptMail, MemoryStore
from maild.core.parse import content_hash
from maild.domain import (
    Attachment,
    AutoSignals,
    EventKind,
    MailDisposition,
    MailOrigin,
    MailRecord,
    MailState,
    OutboxState,
    Person,
)
from maild.errors import (
    LoopDetected,
    MailTooLarge,
    StoreUnavailable,
    UnparseableMail,
)
from tests.unit.app.conftest import ALICE, MARIE, MON, SMTP, AppDesk

QUARANTINED, DONE = MailDisposition.QUARANTINED, MailDisposition.DONE


def only_record(desk: AppDesk) -> KeptMail:
    (record,) = desk.store.mail_records()
    return record


def test_a_new_mail_opens_a_ticket_and_its_record_says_so(desk: AppDesk) -> None:
    assert desk.send() is DONE
    (ticket,) = desk.store.tickets()
    record = only_record(desk)
    assert (record.state, record.reason) == (MailState.DONE, "ticket I261130_0001")
    assert (record.ticket_id, record.sender, record.attempts) == (ticket.id, MARIE, 1)
    assert ticket.source_mail_id == record.id


def test_the_same_mail_twice_is_handled_once(desk: AppDesk) -> None:
    mail = desk.mail()
    assert desk.send(mail) is DONE
    assert desk.send(mail) is DONE  # same content hash, other trace headers
    assert len(desk.store.tickets()) == 1
    assert len(desk.store.mail_records()) == 1
    assert desk.templates() == ["confirmation.requester", "announcement.pool"]


def test_a_mail_is_known_by_its_place_in_the_mailbox(desk: AppDesk) -> None:
    place = MailOrigin("imap:helpdesk/INBOX", uidvalidity=7, uid=42)
    desk.send(origin=place)
    desk.send(origin=place)  # other bytes at the same place: the same mail
    assert len(desk.store.tickets()) == 1
    assert only_record(desk).origin == place


def test_two_mails_with_one_message_id_are_two_mails(desk: AppDesk) -> None:
    desk.send(message_id="reused@client.example.com", subject="Printer")
    desk.send(message_id="reused@client.example.com", subject="Screen")
    assert [t.subject for t in desk.store.tickets()] == ["Printer", "Screen"]


def test_an_outsider_is_quarantined_and_never_answered(desk: AppDesk) -> None:
    spammer = Person("Verify", "noreply@accounts.example.org")
    assert desk.send(sender=spammer, subject="Verify your account") is QUARANTINED
    record = only_record(desk)
    assert record.state is MailState.QUARANTINED
    assert record.reason == (
        "outsider: sender noreply@accounts.example.org is not in an accepted domain"
    )
    assert desk.store.tickets() == ()
    assert desk.store.outbox() == ()


@pytest.mark.parametrize(
    ("auto", "sender", "reason"),
    [
        (
            AutoSignals(auto_submitted="auto-replied"),
            MARIE,
            "auto_reply: Auto-Submitted: auto-replied",
        ),
        (AutoSignals(has_x_autoreply=True), MARIE, "auto_reply: X-Autoreply header"),
        (AutoSignals(precedence="bulk"), MARIE, "list: Precedence: bulk"),
        (AutoSignals(list_id="news.example.com"), MARIE, "list: mailing list traffic"),
        (
            AutoSignals(),
            "mailer-daemon@example.com",
            "bounce: sent by mailer-daemon@example.com",
        ),
        (AutoSignals(is_null_return_path=True), MARIE, "bounce: null return path"),
    ],
)
def test_robot_mail_is_ignored_with_its_reason_and_never_answered(
    desk: AppDesk, auto: AutoSignals, sender: str, reason: str
) -> None:
    assert desk.send(auto=auto, sender=Person("", sender)) is DONE
    record = only_record(desk)
    assert (record.state, record.reason, record.ticket_id) == (
        MailState.IGNORED,
        reason,
        None,
    )
    assert desk.store.tickets() == ()
    assert desk.store.outbox() == ()


def test_our_own_mail_coming_back_is_a_loop(desk: AppDesk) -> None:
    ticket = desk.open()
    ours = desk.sent()[0].mail.message_id
    desk.send(message_id=ours, subject=f"[HD {ticket.number}] Imprimante")
    record = desk.store.mail_records()[-1]
    assert (record.state, record.reason) == (
        MailState.IGNORED,
        "loop: our own mail came back",
    )
    assert desk.events(ticket, EventKind.AUTO_REPLY)[0].text == record.reason
    assert len(desk.sent()) == 2


def test_an_auto_reply_to_a_ticket_is_kept_on_it_unanswered(desk: AppDesk) -> None:
    ticket = desk.open()
    before = len(desk.sent())
    desk.reply(ticket, MARIE, "Back on Monday.", auto=AutoSignals("auto-replied"))
    (event,) = desk.events(ticket, EventKind.AUTO_REPLY)
    assert (event.actor, event.text) == (
        MARIE,
        "auto_reply: Auto-Submitted: auto-replied",
    )
    assert event.mail_id == desk.store.mail_records()[-1].id
    assert desk.store.mail_records()[-1].ticket_id == ticket.id
    assert len(desk.sent()) == before


def bounce_of(message_id: str, action: str = "failed") -> dict[str, object]:
    """The fields of a delivery report about one of our mails."""
    headers = f"Message-ID: <{message_id}>\nSubject: whatever\n".encode()
    status = (
        "Reporting-MTA: dns; mx.example.com\n\n"
        "Final-Recipient: rfc822; marie@example.com\n"
        f"Action: {action}\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\n"
    ).encode()
    return {
        "sender": Person("Mail Delivery System", "mailer-daemon@example.com"),
        "subject": "Undelivered Mail Returned to Sender",
        "text": "Your message could not be delivered.",
        "auto": AutoSignals(is_delivery_report=True),
        "attachments": (
            Attachment("status", "message/delivery-status", status),
            Attachment("headers", "text/rfc822-headers", headers),
        ),
    }


def test_a_bounce_marks_our_mail_failed_and_is_noted_on_its_ticket(
    desk: AppDesk,
) -> None:
    ticket = desk.open()
    confirmation = desk.sent("confirmation.requester")[0].mail.message_id
    assert desk.send(**bounce_of(confirmation)) is DONE
    (event,) = desk.events(ticket, EventKind.BOUNCE)
    assert event.actor == "mailer-daemon@example.com"
    assert "550 5.1.1 mailbox unknown" in event.text
    record = desk.store.mail_records()[-1]
    assert (record.state, record.ticket_id) == (MailState.IGNORED, ticket.id)
    (failed,) = [q for q in desk.store.outbox() if q.state is OutboxState.FAILED]
    assert failed.mail.message_id == confirmation
    assert failed.last_error == (
        "bounced: marie@example.com: 550 5.1.1 mailbox unknown"
    )
    assert len(desk.sent()) == 2  # nobody is told of it by mail


def test_a_delay_report_marks_nothing_failed(desk: AppDesk) -> None:
    ticket = desk.open()
    confirmation = desk.sent("confirmation.requester")[0].mail.message_id
    desk.send(**bounce_of(confirmation, action="delayed"))
    assert len(desk.events(ticket, EventKind.BOUNCE)) == 1
    assert {q.state for q in desk.store.outbox()} == {OutboxState.PENDING}


HEADERS = (
    b"From: Marie Curie <marie@example.com>\r\n"
    b"Subject: Scan of the contract\r\n"
    b"Message-ID: <big@client.example.com>\r\n\r\n"
)


def test_a_mail_over_a_limit_is_quarantined_and_its_sender_told(
    desk: AppDesk,
) -> None:
    outcome = desk.send(MailTooLarge("attachment over 20 MB"), raw=HEADERS + b"...")
    assert outcome is QUARANTINED
    record = only_record(desk)
    assert (record.state, record.reason) == (
        MailState.QUARANTINED,
        "too_large: attachment over 20 MB",
    )
    (told,) = desk.sent()
    assert (told.template, told.to) == ("rejected.sender", (MARIE,))
    assert (told.notice.refused_subject, told.notice.reason) == (
        "Scan of the contract",
        "too_large",
    )
    assert told.mail.in_reply_to == "big@client.example.com"
    assert told.ticket_id is None


def test_a_mail_over_the_size_the_server_announced_is_never_parsed(
    desk: AppDesk,
) -> None:
    size = desk.settings.limits.max_mail_bytes + 1
    origin = MailOrigin("imap:helpdesk/INBOX", uidvalidity=1, uid=9, size=size)
    assert desk.send(raw=HEADERS, origin=origin) is QUARANTINED
    assert desk.parser.calls == 0
    assert only_record(desk).reason == f"too_large: {size} bytes"
    assert desk.templates() == ["rejected.sender"]


@pytest.mark.parametrize(
    ("raw", "rejected"),
    [
        (HEADERS, LoopDetected("X-Maild-Loop")),  # a loop: never answered
        (HEADERS.replace(b"example.com>", b"example.org>", 1), UnparseableMail("?")),
        (b"From: MAILER-DAEMON@example.com\r\n\r\n", UnparseableMail("?")),
    ],
    ids=["loop", "outsider", "robot"],
)
def test_a_refused_mail_from_a_robot_an_outsider_or_a_loop_gets_no_answer(
    desk: AppDesk, raw: bytes, rejected: Exception
) -> None:
    assert desk.send(rejected, raw=raw) is QUARANTINED
    assert only_record(desk).state is MailState.QUARANTINED
    assert desk.store.outbox() == ()


def test_a_mail_that_keeps_crashing_is_quarantined_after_the_attempts(
    desk: AppDesk,
) -> None:
    mail, raw = desk.mail(), b"the crashing mail"
    desk.renderer.failure = RuntimeError("a bug")
    for _ in range(desk.settings.limits.handling_attempts):
        with pytest.raises(RuntimeError):
            desk.send(mail, raw=raw)
    assert desk.store.tickets() == ()  # each attempt rolled back
    assert only_record(desk).attempts == 3
    desk.renderer.failure = None
    assert desk.send(mail, raw=raw) is QUARANTINED
    assert only_record(desk).reason == "handling failed 3 times"
    assert desk.store.tickets() == ()


def test_a_temporary_failure_costs_no_attempt(desk: AppDesk) -> None:
    mail, raw = desk.mail(), b"mail while the database is down"
    desk.renderer.failure = StoreUnavailable("database restarting")
    with pytest.raises(StoreUnavailable):
        desk.send(mail, raw=raw)
    assert (only_record(desk).state, only_record(desk).attempts) == (
        MailState.PENDING,
        0,
    )
    desk.renderer.failure = None
    assert desk.send(mail, raw=raw) is DONE
    assert only_record(desk).attempts == 1


class RefundFails(MemoryStore):
    """A store that cannot take an attempt back while it is down."""

    is_down = True

    def refund_attempt(self, mail_id: int) -> MailRecord:
        if self.is_down:
            raise StoreUnavailable("database restarting")
        return super().refund_attempt(mail_id)


def test_an_attempt_the_store_could_not_give_back_is_given_back_later() -> None:
    store = RefundFails()
    desk = AppDesk(store=store)
    mail, raw = desk.mail(), b"mail while the database is down"
    desk.renderer.failure = StoreUnavailable("database restarting")
    with pytest.raises(StoreUnavailable):
        desk.send(mail, raw=raw)
    assert only_record(desk).attempts == 1  # owed
    store.is_down, desk.renderer.failure = False, None
    assert desk.send(mail, raw=raw) is DONE
    assert only_record(desk).attempts == 1


class StaleReads(MemoryStore):
    """Reads every mail's record as pending: as a process that registered it
    just before another one committed its effect."""

    def register_mail(
        self, origin: MailOrigin, content_hash: str, raw: bytes, now: datetime
    ) -> MailRecord:
        record = super().register_mail(origin, content_hash, raw, now)
        return replace(record, state=MailState.PENDING)


@pytest.mark.parametrize(
    ("first", "outcome"),
    [({}, DONE), ({"sender": Person("", "x@example.org")}, QUARANTINED)],
    ids=["ticket", "quarantined"],
)
def test_a_mail_handled_meanwhile_by_another_process_is_not_handled_twice(
    first: dict[str, object], outcome: MailDisposition
) -> None:
    desk = AppDesk(store=StaleReads())
    mail = desk.mail(**first)
    desk.send(mail)
    outbox, tickets = desk.store.outbox(), desk.store.tickets()
    assert desk.send(mail) is outcome
    assert (desk.store.outbox(), desk.store.tickets()) == (outbox, tickets)


def test_quarantine_by_hand_records_the_reason_once(desk: AppDesk) -> None:
    raw = HEADERS + b"body"
    assert desk.app.quarantine(raw, SMTP, "crashed: KeyError") is QUARANTINED
    assert only_record(desk).reason == "crashed: KeyError"
    assert desk.app.quarantine(raw, SMTP, "again") is QUARANTINED
    assert only_record(desk).reason == "crashed: KeyError"


def test_quarantine_of_a_mail_already_handled_leaves_it_be(desk: AppDesk) -> None:
    raw = HEADERS + b"Nothing prints."
    desk.send(desk.mail(content_hash=content_hash(raw)), raw=raw)  # as parse does
    assert desk.app.quarantine(raw, SMTP, "late") is DONE
    assert only_record(desk).state is MailState.DONE


def test_quarantine_of_a_mail_finished_meanwhile_keeps_its_end() -> None:
    desk = AppDesk(store=StaleReads())
    origin = MailOrigin("imap:helpdesk/INBOX", uidvalidity=1, uid=1)
    desk.send(raw=b"at a place", origin=origin)
    assert desk.app.quarantine(b"at a place", origin, "late") is DONE
    assert only_record(desk).state is MailState.DONE


def test_help_and_list_are_answered_and_recorded(desk: AppDesk) -> None:
    assert desk.send(subject="HELP") is DONE
    record = only_record(desk)
    assert (record.state, record.reason, record.ticket_id) == (
        MailState.DONE,
        "help answered",
        None,
    )
    assert desk.templates() == ["help.sender"]


def test_a_reply_is_recorded_on_its_ticket(desk: AppDesk) -> None:
    ticket = desk.open()
    desk.reply(ticket, ALICE, "CLAIM\nRESOLVE")
    record = desk.store.mail_records()[-1]
    assert (record.state, record.ticket_id) == (MailState.DONE, ticket.id)
    assert record.reason == "reply on I261130_0001: 1 command(s) done, 1 refused"


def test_a_number_in_the_subject_from_a_stranger_names_no_ticket(
    desk: AppDesk,
) -> None:
    ticket = desk.open()
    desk.send(
        sender=Person("", "zoe@example.com"),
        subject=f"Re: [HD {ticket.number}] {ticket.subject}",
        text="CANCEL",
    )
    assert desk.ticket(ticket.number).status is ticket.status
    assert [t.requester.address for t in desk.store.tickets()] == [
        MARIE,
        "zoe@example.com",
    ]


class ForgetsTickets(MemoryStore):
    """Threads a mail to a ticket the transaction then no longer finds: as a
    ticket removed between classification and handling."""

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return "I261130_0404" if "gone@example.com" in message_ids else None


def test_a_reply_to_a_ticket_gone_meanwhile_fails_and_stays_pending() -> None:
    desk = AppDesk(store=ForgetsTickets())
    with pytest.raises(LookupError):
        desk.send(in_reply_to=("gone@example.com",), text="CANCEL")
    record = only_record(desk)
    assert (record.state, record.attempts) == (MailState.PENDING, 1)
    assert desk.store.outbox() == ()


def test_check_sla_fires_the_due_timers_then_the_digests(desk: AppDesk) -> None:
    ticket = desk.open()
    at = MON + timedelta(minutes=30)  # the re-announcement; digests are due
    assert desk.app.check_sla(at) == 1 + 3  # alice, bob, chef
    assert len(desk.events(ticket, EventKind.REANNOUNCED)) == 1
    assert desk.app.check_sla(at) == 0
