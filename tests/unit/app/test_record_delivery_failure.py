"""RecordDeliveryFailure: a mail refused for good is noted on its ticket and
reported to the supervisors, in the transaction that marks it failed; a
report is never reported."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from maild.app.ports import MAILD
from maild.app.record_delivery_failure import RecordDeliveryFailure
from maild.domain import EventKind, FailedDelivery, OutboxState, Role
from tests.unit.app.conftest import CHEF, MARIE, MON, POOL, AppDesk, Sent

ERROR = "550 5.1.1 <marie@example.com>: mailbox unknown"


def fail(desk: AppDesk, sent: Sent, error: str = ERROR) -> None:
    """The relay refused a queued mail for good: the outbox sender's hook."""
    recorder = RecordDeliveryFailure(desk.settings, desk.app.outbound)
    with desk.store.transaction() as tx:
        failed = tx.mark_failed(sent.outbox_id, error)
        assert failed is not None
        recorder.record(tx, failed, desk.clock.now)


def reports(desk: AppDesk) -> list[Sent]:
    return desk.sent("delivery_failed.supervisor")


def test_a_failed_confirmation_is_noted_and_reported(desk: AppDesk) -> None:
    ticket = desk.open()
    (confirmation,) = desk.sent("confirmation.requester")
    desk.clock.now = MON + timedelta(minutes=3)
    fail(desk, confirmation)
    (event,) = desk.events(ticket, EventKind.BOUNCE)
    assert (event.actor, event.text, event.is_internal, event.at) == (
        MAILD,
        f"delivery failed: {ERROR}",
        True,
        desk.clock.now,
    )
    assert event.message_id == confirmation.mail.message_id
    (report,) = reports(desk)
    assert report.to == (CHEF,)
    assert report.notice.ticket.number == ticket.number
    assert report.notice.error == ERROR
    assert report.notice.failed_recipients == (MARIE,)
    assert report.notice.failed_subject == "confirmation.requester"
    assert (report.ticket_id, report.mail.ticket_number) == (ticket.id, ticket.number)
    (queued,) = [q for q in desk.store.outbox() if q.id == confirmation.outbox_id]
    assert queued.state is OutboxState.FAILED


def test_a_report_that_fails_is_not_reported(desk: AppDesk) -> None:
    ticket = desk.open()
    fail(desk, desk.sent("confirmation.requester")[0])
    (report,) = reports(desk)
    fail(desk, report, "550 no such supervisor")
    assert len(reports(desk)) == 1
    assert len(desk.events(ticket, EventKind.BOUNCE)) == 2  # still noted


def test_a_failed_breach_alert_is_not_reported(desk: AppDesk) -> None:
    ticket = desk.open(text="Urgency: high")
    desk.app.timers.fire(MON.replace(hour=10))
    (alert,) = desk.sent("breach.supervisor")
    fail(desk, alert)
    assert reports(desk) == []
    assert len(desk.events(ticket, EventKind.BOUNCE)) == 1


def test_a_failed_mail_about_no_ticket_is_reported_without_one(
    desk: AppDesk,
) -> None:
    desk.send(subject="HELP")
    (help_answer,) = desk.sent("help.sender")
    fail(desk, help_answer)
    (report,) = reports(desk)
    assert (report.notice.ticket, report.ticket_id) == (None, None)
    assert report.notice.failed_recipients == (MARIE,)


def test_without_supervisors_the_pool_gets_the_report(
    make_desk: Callable[..., AppDesk],
) -> None:
    desk = make_desk(helpdesk={"supervisors": []})
    desk.open()
    fail(desk, desk.sent("announcement.pool")[0])
    (report,) = reports(desk)
    assert report.to == (POOL,)


def test_supervisors_added_with_the_command_line_get_it_too(desk: AppDesk) -> None:
    desk.store.add_staff("nadia@example.com", Role.SUPERVISOR)
    desk.open()
    fail(desk, desk.sent("confirmation.requester")[0])
    (report,) = reports(desk)
    assert report.to == (CHEF, "nadia@example.com")


@pytest.mark.parametrize("audience", ["requester", "robot", ""])
def test_a_failure_recorded_by_another_version_is_reported(
    desk: AppDesk, audience: str
) -> None:
    ticket = desk.open()
    failed = FailedDelivery(
        message_id="old@example.com",
        ticket_id=ticket.id,
        recipients=(MARIE,),
        subject="Old subject",
        audience=audience,
        error=ERROR,
    )
    recorder = RecordDeliveryFailure(desk.settings, desk.app.outbound)
    with desk.store.transaction() as tx:
        recorder.record(tx, failed, MON)
    (report,) = reports(desk)
    assert report.notice.failed_subject == "Old subject"


def fail_and_roll_back(desk: AppDesk, sent: Sent) -> None:
    """Record a failure in a transaction that then fails to commit."""
    with desk.store.transaction() as tx:
        failed = tx.mark_failed(sent.outbox_id, ERROR)
        assert failed is not None
        RecordDeliveryFailure(desk.settings, desk.app.outbound).record(tx, failed, MON)
        raise RuntimeError("the commit failed")


def test_nothing_is_recorded_unless_the_failure_is(desk: AppDesk) -> None:
    ticket = desk.open()
    (confirmation,) = desk.sent("confirmation.requester")
    outbox = desk.store.outbox()
    with pytest.raises(RuntimeError):
        fail_and_roll_back(desk, confirmation)
    assert desk.store.outbox() == outbox
    assert desk.events(ticket, EventKind.BOUNCE) == []
