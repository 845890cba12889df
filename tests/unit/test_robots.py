"""Robots: loops, bare-text bounces, no-reply senders and asks for no answer.

Each fixture under tests/fixtures/mail/robots/ is written for these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.core import notices, robots
from maild.core.classify import Ignored, NewTicket, classify
from maild.core.parse import parse_mail
from maild.domain import (
    Audience,
    AutoSignals,
    IgnoreReason,
    InboundMail,
    Notification,
    Person,
    Role,
)
from tests.support.factories import POLICY, make_mail, make_view

ROBOTS = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "robots"


class NoThreads:
    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return None

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        return None

    def staff(self) -> dict[str, str]:
        return {}


def _read(name: str) -> InboundMail:
    return parse_mail((ROBOTS / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x_loop_yes.eml", IgnoreReason.LOOP),
        ("noreply_bare_bounce.eml", IgnoreReason.BOUNCE),
        ("bounces_tag_dsn_text.eml", IgnoreReason.BOUNCE),
        ("mailer_delivery_failed.eml", IgnoreReason.BOUNCE),
    ],
)
def test_a_robots_mail_is_ignored(name: str, reason: IgnoreReason) -> None:
    outcome = classify(_read(name), POLICY, NoThreads())
    assert isinstance(outcome, Ignored)
    assert outcome.reason is reason


@pytest.mark.parametrize(
    ("name", "is_suppressed"),
    [
        ("suppress_all.eml", True),  # "DR, All"
        ("suppress_oof.eml", True),  # "rn,oof , autoreply": any case, any spaces
        ("suppress_dr_only.eml", False),  # no delivery reports: answers still go
        ("noreply_alert.eml", True),  # no-reply+alerts@: nobody reads it
        ("donotreply_notice.eml", True),  # DoNotReply@
    ],
)
def test_a_mail_that_may_be_a_persons_opens_a_ticket_but_may_get_no_answer(
    name: str, is_suppressed: bool
) -> None:
    mail = _read(name)
    assert isinstance(classify(mail, POLICY, NoThreads()), NewTicket)
    assert robots.is_answer_suppressed(mail) is is_suppressed


def test_the_exchange_header_is_read_into_the_auto_signals() -> None:
    assert _read("suppress_all.eml").auto.is_answer_suppressed
    assert not _read("suppress_dr_only.eml").auto.is_answer_suppressed
    assert _read("x_loop_yes.eml").auto.has_x_loop


@pytest.mark.parametrize(
    ("address", "is_robot"),
    [
        ("noreply@example.com", True),
        ("No-Reply@example.com", True),
        ("donotreply@example.com", True),
        ("do-not-reply@example.com", True),
        ("bounce@example.com", True),
        ("bounces+abc=marie@example.com", True),
        ("mailer@example.com", True),
        ("postmaster+x@example.com", True),
        ("MAILER-DAEMON@example.com", True),
        ("mailer.smith@example.com", False),
        ("noreplyfan@example.com", False),
        ("marie@example.com", False),
        ("jean.bounce@example.com", False),
    ],
)
def test_robot_addresses(address: str, is_robot: bool) -> None:
    assert robots.is_no_reply_address(address) is is_robot


def test_a_bounce_like_text_from_a_person_is_not_a_bounce() -> None:
    mail = make_mail(subject="Undelivered Mail Returned to Sender", text="Why?")
    assert not robots.is_bare_bounce(mail)
    assert isinstance(classify(mail, POLICY, NoThreads()), NewTicket)


def test_mailer_daemon_with_a_tag_is_a_bounce() -> None:
    mail = make_mail(sender=Person("", "mailer-daemon+x@example.com"), subject="Hi")
    outcome = classify(mail, POLICY, NoThreads())
    assert isinstance(outcome, Ignored)
    assert outcome.reason is IgnoreReason.BOUNCE


def test_x_loop_on_list_traffic_stays_list_traffic() -> None:
    auto = AutoSignals(precedence="bulk", has_x_loop=True)
    outcome = classify(make_mail(auto=auto), POLICY, NoThreads())
    assert isinstance(outcome, Ignored)
    assert outcome.reason is IgnoreReason.LIST


def _confirmation(to: tuple[str, ...]) -> Notification:
    return Notification(
        "confirmation",
        Audience.REQUESTER,
        to,
        notices.Confirmation(make_view()),
        is_capped=True,
    )


def test_without_answers_keeps_notices_to_others() -> None:
    suppressed = make_mail(auto=AutoSignals(is_answer_suppressed=True))
    pool = Notification(
        "announcement",
        Audience.POOL,
        ("pool@example.com",),
        notices.Announcement(make_view()),
    )
    help_ = Notification(
        "help", Audience.SENDER, ("MARIE@example.com",), notices.Help(Role.REQUESTER)
    )
    both = _confirmation(("marie@example.com", "paul@example.com"))
    notes = (_confirmation(("marie@example.com",)), pool, help_, both)
    kept = robots.without_answers(notes, suppressed)
    assert [(n.template, n.to) for n in kept] == [
        ("announcement", ("pool@example.com",)),
        ("confirmation", ("paul@example.com",)),
    ]
    assert robots.without_answers(notes, make_mail()) == notes
    assert robots.without_answers(notes, None) == notes
