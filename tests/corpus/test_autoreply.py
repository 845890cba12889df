"""Out-of-office replies, with and without their RFC 3834 headers, never act."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from maild.core.autoreply import autoreply_sign, fold
from maild.core.classify import Ignored, classify
from maild.core.parse import parse_mail
from maild.domain import IgnoreReason
from maild.errors import MaildError
from tests.support.corpus import corpus_files
from tests.support.factories import POLICY

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "autoreply"
ALL = sorted(SAMPLES.glob("*.eml"))
OURS = "5f2c0e9a7b1d4c3e8a6f0b21.4e7a9c1d2b3f@example.com"
TEXT_SIGNS = {
    "auto-reply subject",
    "out-of-office subject and text",
    "out-of-office text",
}


@dataclass
class Threads:
    sent: dict[str, str] = field(default_factory=lambda: {OURS: "I261130_0001"})

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> str | None:
        return next((self.sent[m] for m in message_ids if m in self.sent), None)

    def ticket_parties(self, number: str) -> frozenset[str] | None:
        return frozenset({"marie@example.com"}) if number == "I261130_0001" else None

    def staff(self) -> dict[str, str]:
        return {}


def test_there_are_samples_of_every_style_with_and_without_headers() -> None:
    names = {p.stem.rpartition("_")[0] for p in ALL}
    assert len(names) >= 12
    assert {p.stem for p in ALL} == {
        f"{n}_{v}" for n in names for v in ("headers", "bare")
    }
    for style in ("exchange", "gmail", "thunderbird", "zimbra"):
        assert any(n.startswith(style) for n in names)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_sample_is_an_ignored_auto_reply(path: Path) -> None:
    mail = parse_mail(path.read_bytes())
    outcome = classify(mail, POLICY, Threads())
    assert isinstance(outcome, Ignored)  # never a Reply: nothing reopens or acts
    assert outcome.reason is IgnoreReason.AUTO_REPLY
    if mail.thread_refs or "[HD I261130_0001]" in mail.subject:
        assert outcome.ticket_number == "I261130_0001"  # recorded on its ticket
    if path.stem.endswith("_bare"):
        assert outcome.detail in TEXT_SIGNS  # told by its words alone
    else:
        assert outcome.detail not in TEXT_SIGNS  # the headers spoke first


@pytest.mark.parametrize(
    ("subject", "text", "is_reply", "expected"),
    [
        # Subject prefixes that are enough alone.
        ("Automatic reply: Printer", "", False, "auto-reply subject"),
        ("Réponse automatique\u00a0: Imprimante", "", False, "auto-reply subject"),
        ("AUTOMATISCHE ANTWORT: Drucker", "", False, "auto-reply subject"),
        ("Abwesenheitsnotiz: Drucker", "", False, "auto-reply subject"),
        ("Auto-Reply: x", "", False, "auto-reply subject"),
        ("[Autoreply] x", "", False, "auto-reply subject"),
        ("Out of Office AutoReply: x", "", False, "auto-reply subject"),
        ("Automatic reply", "", False, "auto-reply subject"),
        # Topic-like prefixes need an out-of-office sentence.
        (
            "Out of Office: Printer",
            "I'm travelling this week.",
            False,
            "out-of-office subject and text",
        ),
        (
            "Absence du bureau",
            "Je serai en congés.",
            False,
            "out-of-office subject and text",
        ),
        (
            "Absent du bureau : Imprimante",
            "Ceci est un message automatique.",
            False,
            "out-of-office subject and text",
        ),
        (
            "Abwesenheit",
            "Ich bin nicht erreichbar.",
            False,
            "out-of-office subject and text",
        ),
        ("Out of office", "How do I switch my out of office on?", False, None),
        ("Absence", "Comment déclarer une absence dans le logiciel RH ?", False, None),
        # No subject sign: a short answer saying so, with a way back.
        (
            "Re: Printer",
            "I am out of the office until Monday.",
            False,
            "out-of-office text",
        ),
        ("x", "Hello,\nI am on annual leave till 4 May.", True, "out-of-office text"),
        ("x", "Je suis absente jusqu'au 7 décembre.", True, "out-of-office text"),
        (
            "AW: Drucker",
            "Ich bin bis zum 7. Dezember nicht im Büro.",
            False,
            "out-of-office text",
        ),
        ("x", "Dies ist eine automatische Antwort.", True, "out-of-office text"),
        (
            "Re: x",
            "This is an automated message.\n\nThanks.",
            False,
            "out-of-office text",
        ),
        # People who write about an absence are not robots.
        (
            "Re: [HD I261130_0001] Printer",
            "I was out of office yesterday, the printer still fails.",
            True,
            None,
        ),
        (
            "Re: Printer",
            "I was out of the office last week. It still fails.",
            True,
            None,
        ),
        (
            "Re: Printer",
            "I am out of the office tomorrow, can you come today?",
            True,
            None,
        ),
        (
            "Re: Imprimante",
            "Je suis absente demain, pouvez-vous passer aujourd'hui ?",
            True,
            None,
        ),
        (
            "Re: Drucker",
            "Ich bin morgen nicht im Büro. Der Drucker geht nicht.",
            True,
            None,
        ),
        (
            "Poste",
            "Je suis absente jusqu'au 12, merci de préparer mon poste.",
            False,
            None,
        ),  # a new mail, not an answer
        ("Re: x", "I am away until May.\n" + "More details here.\n" * 30, True, None),
        ("Re: x", "I am away until May. " + "x" * 1500, True, None),
        ("Re: x", "Thanks.\n" * 6 + "I am away until May.", True, None),
        (
            "Automatic reply not working",
            "My automatic replies do not go out.",
            False,
            None,
        ),
        (
            "RE: Automatic reply: Printer",
            "Ignore my auto reply, I am here.",
            False,
            None,
        ),
        ("Réponse automatique ne fonctionne pas", "Elle ne part plus.", False, None),
        ("Abwesenheitsassistent defekt", "Er funktioniert nicht.", False, None),
    ],
)
def test_auto_reply_signs(
    subject: str, text: str, is_reply: bool, expected: str | None
) -> None:
    assert autoreply_sign(subject, text, is_reply=is_reply) == expected


def test_quoted_text_is_not_read() -> None:
    text = "The printer still fails.\n\n> I am out of the office until Monday.\n"
    assert autoreply_sign("Re: x", text, is_reply=True) is None


def test_fold() -> None:
    assert fold("  Réponse\u00a0AUTOMATIQUE  l\u2019été Außer Büro ") == (
        "reponse automatique l'ete ausser buro"
    )


def test_no_mail_of_the_corpus_is_taken_for_an_auto_reply_by_its_words(
    corpus_dir: Path,
) -> None:
    """Even read as answers, people's mails in the corpus are not auto-replies."""
    found = []
    for path in corpus_files(corpus_dir):
        try:
            mail = parse_mail(path.read_bytes())
        except MaildError:  # quarantined mail: not for this test
            continue
        if autoreply_sign(mail.subject, mail.text, is_reply=True) is not None:
            found.append(path.name)
    # The only ones are sisimai's RFC 3834 sample, in its three line endings.
    assert sorted(set(found)) == ["rfc3834-01.eml"]
