"""A mail the relay refused for good: the supervisors are told, never about a report."""

from __future__ import annotations

import pytest

from maild.core import notices
from maild.core.notify import DeliveryFailedOutcome, notifications_for
from maild.domain import Audience, TicketView
from tests.support.factories import make_view

POOL = "pool@example.com"
ERROR = "550 5.1.1 <jeanne@example.com>: Recipient address rejected"


def outcome(
    failed_audience: Audience,
    supervisors: tuple[str, ...] = ("chef@example.com", "dir@example.com"),
    ticket: TicketView | None = None,
) -> DeliveryFailedOutcome:
    return DeliveryFailedOutcome(
        ticket=ticket,
        recipients=("jeanne@example.com", "paul@example.com"),
        error=ERROR,
        subject="[HD I261129_0007] Votre demande est enregistrée",
        failed_audience=failed_audience,
        supervisors=supervisors,
    )


@pytest.mark.parametrize(
    "failed_audience",
    [
        Audience.REQUESTER,
        Audience.OWNER,
        Audience.POOL,
        Audience.SENDER,
        Audience.TECHNICIAN,
    ],
)
@pytest.mark.parametrize("ticket", [make_view(), None])
def test_supervisors_are_told_what_failed_and_why(
    failed_audience: Audience, ticket: TicketView | None
) -> None:
    (report,) = notifications_for(outcome(failed_audience, ticket=ticket), POOL)
    assert (report.template, report.audience) == (
        "delivery_failed",
        Audience.SUPERVISOR,
    )
    assert report.to == ("chef@example.com", "dir@example.com")
    assert report.ticket == ticket
    assert report.notice == notices.DeliveryFailed(
        ticket=ticket,
        error=ERROR,
        failed_recipients=("jeanne@example.com", "paul@example.com"),
        failed_subject="[HD I261129_0007] Votre demande est enregistrée",
    )
    assert not report.is_capped


def test_without_supervisors_the_pool_is_told() -> None:
    (report,) = notifications_for(outcome(Audience.REQUESTER, supervisors=()), POOL)
    assert report.to == (POOL,)


@pytest.mark.parametrize("supervisors", [("chef@example.com",), ()])
def test_a_failed_mail_to_supervisors_is_never_reported(
    supervisors: tuple[str, ...],
) -> None:
    assert notifications_for(outcome(Audience.SUPERVISOR, supervisors), POOL) == ()
