"""Classification: machine mail first, then threading, then who may open."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from maild.core.addresses import is_accepted, is_plain_mailbox
from maild.core.classify import (
    CommandMail,
    HelpdeskPolicy,
    Ignored,
    NewTicket,
    Outsider,
    Reply,
    classify,
)
from maild.core.commands import SubjectCommand
from maild.domain import AutoSignals, IgnoreReason, Person, TicketType
from tests.support.factories import POLICY as HELPDESK
from tests.support.factories import make_mail

POLICY = replace(HELPDESK, accepted_domains=("example.com", "*.corp.example.org"))


@dataclass
class FakeThreads:
    sent: dict[str, str] = field(default_factory=dict)  # message-id -> number
    numbers: set[str] = field(default_factory=set)
    added: dict[str, str] = field(default_factory=dict)  # staff added by the CLI

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return next((self.sent[m] for m in message_ids if m in self.sent), None)

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        return frozenset({"marie@example.com"}) if number in self.numbers else None

    def staff(self) -> dict[str, str]:
        return self.added


THREADS = FakeThreads(
    sent={"tok.1@example.com": "I261129_0001"}, numbers={"I261129_0001", "S261129_0002"}
)


@pytest.mark.parametrize(
    ("auto", "sender", "reason"),
    [
        (
            AutoSignals(auto_submitted="auto-replied"),
            "marie@example.com",
            IgnoreReason.AUTO_REPLY,
        ),
        (
            AutoSignals(auto_submitted="auto-generated"),
            "marie@example.com",
            IgnoreReason.AUTO_REPLY,
        ),
        (
            AutoSignals(has_x_autoreply=True),
            "marie@example.com",
            IgnoreReason.AUTO_REPLY,
        ),
        (AutoSignals(precedence="bulk"), "marie@example.com", IgnoreReason.LIST),
        (AutoSignals(precedence="junk"), "marie@example.com", IgnoreReason.LIST),
        (AutoSignals(precedence="list"), "marie@example.com", IgnoreReason.LIST),
        (
            AutoSignals(precedence="auto_reply"),
            "marie@example.com",
            IgnoreReason.AUTO_REPLY,
        ),
        (
            AutoSignals(list_id="<x.lists.example.com>"),
            "marie@example.com",
            IgnoreReason.LIST,
        ),
        (
            AutoSignals(is_null_return_path=True),
            "marie@example.com",
            IgnoreReason.BOUNCE,
        ),
        (
            AutoSignals(is_delivery_report=True),
            "marie@example.com",
            IgnoreReason.BOUNCE,
        ),
        (AutoSignals(), "MAILER-DAEMON@example.com", IgnoreReason.BOUNCE),
        (AutoSignals(), "postmaster@example.com", IgnoreReason.BOUNCE),
        (AutoSignals(is_maild_loop=True), "helpdesk@example.com", IgnoreReason.LOOP),
    ],
)
def test_machine_mail_is_ignored_never_a_ticket(
    auto: AutoSignals, sender: str, reason: IgnoreReason
) -> None:
    mail = make_mail(auto=auto, sender=Person("", sender))
    outcome = classify(mail, POLICY, THREADS)
    assert isinstance(outcome, Ignored)
    assert outcome.reason is reason
    assert outcome.ticket_number is None


def test_auto_submitted_no_is_a_person() -> None:
    outcome = classify(
        make_mail(auto=AutoSignals(auto_submitted="no")), POLICY, THREADS
    )
    assert isinstance(outcome, NewTicket)


def test_our_own_message_id_coming_back_is_a_loop() -> None:
    own = "0123456789abcdef01234567.0123456789ab@example.com"
    outcome = classify(make_mail(message_id=own), POLICY, THREADS)
    assert isinstance(outcome, Ignored)
    assert outcome.reason is IgnoreReason.LOOP
    # Someone else's Message-ID on our domain is not a loop.
    other = classify(make_mail(message_id="abc.123@example.com"), POLICY, THREADS)
    assert isinstance(other, NewTicket)


def test_auto_reply_to_a_ticket_names_the_ticket() -> None:
    mail = make_mail(
        auto=AutoSignals(auto_submitted="auto-replied"),
        in_reply_to=("tok.1@example.com",),
    )
    outcome = classify(mail, POLICY, THREADS)
    assert outcome == Ignored(
        IgnoreReason.AUTO_REPLY, "I261129_0001", "Auto-Submitted: auto-replied"
    )


@pytest.mark.parametrize(
    ("overrides", "number"),
    [
        ({"in_reply_to": ("tok.1@example.com",)}, "I261129_0001"),
        ({"references": ("other@x", "tok.1@example.com")}, "I261129_0001"),
        ({"subject": "RE: [HD I261129_0001] Imprimante"}, "I261129_0001"),
        ({"subject": "TR: [hd s261129_0002] VPN"}, "S261129_0002"),
        # thread headers win over the subject
        (
            {"in_reply_to": ("tok.1@example.com",), "subject": "Re: [HD S261129_0002]"},
            "I261129_0001",
        ),
    ],
)
def test_replies_thread_by_headers_then_subject(
    overrides: dict[str, object], number: str
) -> None:
    assert classify(make_mail(**overrides), POLICY, THREADS) == Reply(number)


@pytest.mark.parametrize(
    "subject",
    [
        "Re: [XX I261129_0001] other helpdesk",
        "Re: [HD I261129_9999] unknown",
        "I261129_0001 without brackets",
    ],
)
def test_foreign_or_unknown_tags_open_a_new_ticket(subject: str) -> None:
    assert isinstance(classify(make_mail(subject=subject), POLICY, THREADS), NewTicket)


def test_reply_from_outsider_still_threads() -> None:
    mail = make_mail(
        sender=Person("", "x@evil.test"), in_reply_to=("tok.1@example.com",)
    )
    assert classify(mail, POLICY, THREADS) == Reply("I261129_0001")


def test_outsider_cannot_open_a_ticket() -> None:
    outcome = classify(
        make_mail(sender=Person("", "noreply@service.test")), POLICY, THREADS
    )
    assert isinstance(outcome, Outsider)
    assert "noreply@service.test" in outcome.detail


@pytest.mark.parametrize(
    ("overrides", "ticket_type", "from_address"),
    [
        ({}, TicketType.INCIDENT, True),
        ({"to": (Person("", "demandes@example.com"),)}, TicketType.REQUEST, True),
        (
            {
                "to": (Person("", "demandes@example.com"),),
                "cc": (Person("", "helpdesk@example.com"),),
            },
            TicketType.INCIDENT,
            True,
        ),
        # the envelope wins over the headers
        ({"envelope_recipients": ("demandes@example.com",)}, TicketType.REQUEST, True),
        ({"delivered_to": ("demandes@example.com",)}, TicketType.REQUEST, True),
        ({"to": (Person("", "someone@example.com"),)}, TicketType.INCIDENT, False),
    ],
)
def test_ticket_type_from_the_address(
    overrides: dict[str, object], ticket_type: TicketType, from_address: bool
) -> None:
    assert classify(make_mail(**overrides), POLICY, THREADS) == NewTicket(
        ticket_type, from_address
    )


def test_one_address_for_both_lets_the_type_line_decide() -> None:
    policy = HelpdeskPolicy(
        "HD", ("example.com",), "hd@example.com", "hd@example.com", "example.com"
    )
    assert classify(make_mail(), policy, THREADS) == NewTicket(
        TicketType.INCIDENT, is_type_from_address=False
    )


@pytest.mark.parametrize(
    ("address", "domains", "expected"),
    [
        ("a@example.com", ("example.com",), True),
        ("a@EXAMPLE.com", ("example.com",), True),
        ("a@sub.example.com", ("example.com",), False),
        ("a@sub.example.com", ("*.example.com",), True),
        ("a@badexample.com", ("*.example.com",), False),
        ("a@anything.test", ("*",), True),
        ("no-at-sign", ("*",), False),
        ("", ("example.com",), False),
    ],
)
def test_accepted_domains(
    address: str, domains: tuple[str, ...], expected: bool
) -> None:
    assert is_accepted(address, domains) is expected


@pytest.mark.parametrize(
    ("subject", "command"),
    [
        ("HELP", SubjectCommand.HELP),
        (" aide ", SubjectCommand.HELP),
        ("LISTE", SubjectCommand.LIST),
        ("list", SubjectCommand.LIST),
    ],
)
def test_subject_command_mails(subject: str, command: SubjectCommand) -> None:
    assert classify(make_mail(subject=subject), POLICY, THREADS) == CommandMail(command)


def test_command_subject_from_outsider_is_quarantined() -> None:
    mail = make_mail(subject="HELP", sender=Person("", "x@evil.test"))
    assert isinstance(classify(mail, POLICY, THREADS), Outsider)


def test_unknown_thread_headers_fall_back_to_the_subject_tag() -> None:
    mail = make_mail(
        in_reply_to=("unknown@client",), subject="Re: [HD I261129_0001] Imprimante"
    )
    assert classify(mail, POLICY, THREADS) == Reply("I261129_0001")


@pytest.mark.parametrize(
    "address",
    [
        "evil%evil.test@example.com",  # the percent hack
        "evil.test!evil@example.com",  # a bang path
        '"evil@evil.test"@example.com',  # a quoted "@"
        "@relay.test:evil@example.com",  # a source route
        "a..b@example.com",
        "a@example..com",
        "a@[192.0.2.1]",
    ],
)
def test_routed_addresses_are_never_accepted(address: str) -> None:
    assert not is_plain_mailbox(address)
    assert not is_accepted(address, ("*",))


@pytest.mark.parametrize(
    "address", ["marie@example.com", "o'brien@example.com", "josé@exemple.fr"]
)
def test_plain_mailboxes(address: str) -> None:
    assert is_plain_mailbox(address)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("marie@example.com", Reply("I261129_0001")),  # on the ticket
        ("alice@example.com", Reply("I261129_0001")),  # configured staff
        ("added@example.com", Reply("I261129_0001")),  # staff added by the CLI
        ("enum+1@example.com", NewTicket(TicketType.INCIDENT, True)),  # guessed
    ],
)
def test_a_number_in_the_subject_threads_only_for_who_may_see_the_ticket(
    sender: str, expected: object
) -> None:
    threads = replace(THREADS, added={"added@example.com": "technician"})
    policy = replace(POLICY, staff=frozenset({"alice@example.com"}))
    mail = make_mail(sender=Person("", sender), subject="Re: [HD I261129_0001]")
    assert classify(mail, policy, threads) == expected


def test_a_guessed_number_from_an_outsider_is_quarantined_as_naming_none() -> None:
    mail = make_mail(sender=Person("", "x@evil.test"), subject="[HD I261129_0001]")
    assert isinstance(classify(mail, POLICY, THREADS), Outsider)


def test_machine_mail_naming_a_number_is_recorded_on_the_ticket() -> None:
    mail = make_mail(
        sender=Person("", "robot@example.com"),
        subject="[HD I261129_0001] Out of office",
        auto=AutoSignals(auto_submitted="auto-replied"),
    )
    outcome = classify(mail, POLICY, THREADS)
    assert isinstance(outcome, Ignored)
    assert outcome.ticket_number == "I261129_0001"
