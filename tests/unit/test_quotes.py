"""core/quotes.py: only the new text of a reply counts (SPEC "Replies and keywords")."""

# Replies in Russian and Chinese: their letters and punctuation are the point.
# ruff: noqa: RUF001

from __future__ import annotations

import csv
import email
import os
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from maild.core.quotes import new_text

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
LABELS = "replies-labelled.tsv"


def _corpus_dir() -> Path:
    """Return the corpus, skip without it, fail without it under CI=true."""
    if (CORPUS / LABELS).is_file():
        return CORPUS
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"corpus missing at {CORPUS}")
    pytest.skip(f"corpus missing at {CORPUS}")


def _labelled_rows() -> list[dict[str, str]]:
    if not (CORPUS / LABELS).is_file():
        return [{"path": "", "expected_first_line": ""}]  # the test skips or fails
    with (CORPUS / LABELS).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _plain_text(path: Path) -> str:
    """Read a mail's text/plain part with the email package."""
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    # Header-less samples declare no charset: they are UTF-8.
    return payload.decode(part.get_content_charset() or "utf-8", errors="replace")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@pytest.mark.parametrize(
    "row", _labelled_rows(), ids=lambda row: Path(row["path"]).name or "absent"
)
def test_corpus_reply_keeps_first_line_of_new_text(row: dict[str, str]) -> None:
    corpus = _corpus_dir()
    text = _plain_text(corpus / row["path"])
    assert _first_line(new_text(text)) == row["expected_first_line"]


QUOTE = "> Votre ticket a été résolu.\n> Merci de répondre ACCEPTER ou REFUSER.\n"
QUOTE_EN = "> Your ticket was resolved.\n> Reply ACCEPT or REFUSE.\n"

# (client, reply as sent, expected new text)
OWN_SAMPLES = [
    (
        "fr-outlook-desktop",
        "RESOLU\nImprimante remplacée.\n\nCordialement,\nJean Martin\n\n"
        "De\xa0: Paul Durand <paul.durand@example.com>\n"
        "Envoyé\xa0: lundi 15 novembre 2021 19:42\n"
        "À\xa0: Helpdesk <helpdesk@example.com>\n"
        "Objet\xa0: RE: [HD I211115_0001] Imprimante en panne\n\n"
        "Bonjour, l'imprimante du 2e étage ne marche plus.\n",
        "RESOLU\nImprimante remplacée.\n\nCordialement,\nJean Martin",
    ),
    (
        "fr-outlook-web",
        "ACCEPTER\nMerci, tout fonctionne.\n\n"
        "________________________________\n"
        "De : Helpdesk <helpdesk@example.com>\n"
        "Envoyé : mardi 16 novembre 2021 09:12\n"
        "À : Paul Durand <paul.durand@example.com>\n"
        "Objet : [HD I211115_0001] Ticket résolu\n\n" + QUOTE,
        "ACCEPTER\nMerci, tout fonctionne.",
    ),
    (
        "fr-outlook-2010",
        "PRENDRE\n\n-----Message d'origine-----\n"
        "De : Helpdesk [mailto:helpdesk@example.com]\n"
        "Envoyé : lundi 15 novembre 2021 19:42\n"
        "À : Techniciens\nObjet : [HD I211115_0001] Nouveau ticket\n",
        "PRENDRE",
    ),
    (
        "fr-outlook-mac",
        "ANNULER\nLe problème a disparu après redémarrage.\n\n"
        "De : Helpdesk <helpdesk@example.com>\n"
        "Date : lundi 15 novembre 2021 à 19:42\n"
        "À : Paul Durand <paul.durand@example.com>\n"
        "Objet : [HD I211115_0001] Ticket enregistré\n",
        "ANNULER\nLe problème a disparu après redémarrage.",
    ),
    (
        "fr-yahoo",
        "NOTER 4\n\n      De : Helpdesk <helpdesk@example.com>\n"
        " À : Paul Durand <paul.durand@example.com>\n"
        " Envoyé le : Mercredi 30 novembre 2016 10h30\n"
        " Objet : [HD I161130_0002] Ticket résolu\n",
        "NOTER 4",
    ),
    (
        "en-outlook-desktop",
        "CLAIM\n\nFrom: Helpdesk <helpdesk@example.com>\n"
        "Sent: Monday, November 15, 2021 7:42 PM\n"
        "To: Technicians <techniciens@example.com>\n"
        "Subject: [HD I211115_0001] New ticket\n\nPrinter is down.\n",
        "CLAIM",
    ),
    (
        "en-outlook-original-message",
        "RESOLVED\nToner replaced.\n\n-----Original Message-----\n"
        "From: Helpdesk [mailto:helpdesk@example.com]\n"
        "Sent: Monday, November 15, 2021 7:42 PM\n",
        "RESOLVED\nToner replaced.",
    ),
    (
        "en-outlook-html-to-text",
        "CALL\nUser will reboot tonight.\n\n ------------------------------\n\n"
        "*From:* Helpdesk [mailto:helpdesk@example.com]\n"
        "*Sent:* Thursday, February 09, 2012 1:36 PM\n*To:* alice@example.com\n",
        "CALL\nUser will reboot tonight.",
    ),
    (
        "en-outlook-ios",
        "RATE 5 Very quick\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n"
        "________________________________\nFrom: Helpdesk <helpdesk@example.com>\n"
        "Sent: Monday, November 15, 2021 7:42:02 PM\n",
        "RATE 5 Very quick",
    ),
    (
        "fr-outlook-ios",
        "ACCEPTER\n\nEnvoyé à partir de Outlook pour iOS<https://aka.ms/o0ukef>\n"
        "________________________________\nDe : Helpdesk <helpdesk@example.com>\n"
        "Envoyé : lundi, novembre 15, 2021 7:42 PM\n",
        "ACCEPTER",
    ),
    (
        "en-gmail",
        "RESOLVED\nReplaced the toner.\n\n"
        "On Mon, Nov 15, 2021 at 7:42 PM Helpdesk <helpdesk@example.com> wrote:\n\n"
        + QUOTE_EN,
        "RESOLVED\nReplaced the toner.",
    ),
    (
        "en-gmail-wrapped",
        "TASK Reinstalled the driver\n\n"
        "On Mon, Nov 15, 2021 at 7:42 PM Helpdesk Service Desk <\n"
        "helpdesk@example.com> wrote:\n\n> Printer is down.\n",
        "TASK Reinstalled the driver",
    ),
    (
        "fr-gmail",
        "REFUSER\nL'écran clignote toujours.\n\n"
        "Le lun. 15 nov. 2021 à 19:42, Helpdesk <helpdesk@example.com> a écrit :\n\n"
        + QUOTE,
        "REFUSER\nL'écran clignote toujours.",
    ),
    (
        "fr-gmail-wrapped",
        "RÉSOLU\nPilote réinstallé.\n\n"
        "Le lun. 15 nov. 2021 à 19:42, Service informatique <helpdesk@example.com> a\n"
        "écrit :\n\n" + QUOTE,
        "RÉSOLU\nPilote réinstallé.",
    ),
    (
        "fr-gmail-wrapped-before-a-ecrit",
        "ACCEPTER\n\nLe lun. 15 nov. 2021 à 19:42, John - Acme <john@acme.example>\n"
        "a écrit :\n\nEtiam non sagittis\n",
        "ACCEPTER",
    ),
    (
        "en-apple-mail",
        "ACCEPT\n\n> On 15 Nov 2021, at 19:42, Helpdesk <helpdesk@example.com> wrote:\n"
        "> \n" + QUOTE_EN,
        "ACCEPT",
    ),
    (
        "en-apple-mail-unquoted-attribution",
        "ACCEPT\nThanks!\n\nOn 15 Nov 2021, at 19:42, Helpdesk <helpdesk@example.com>"
        " wrote:\n\n" + QUOTE_EN,
        "ACCEPT\nThanks!",
    ),
    (
        "fr-apple-mail",
        "REFUSER\nToujours en panne.\n\n"
        "> Le 15 nov. 2021 à 19:42, Helpdesk <helpdesk@example.com> a écrit :\n"
        "> \n" + QUOTE,
        "REFUSER\nToujours en panne.",
    ),
    (
        "en-thunderbird-date-first",
        "NOTE\nUser is on leave until Monday.\n\n"
        "On 04/02/2012 06:26 PM, Helpdesk wrote:\n" + QUOTE_EN,
        "NOTE\nUser is on leave until Monday.",
    ),
    (
        "fr-thunderbird",
        "PDR\nMessagerie pleine.\n\nLe 16/11/2021 à 02:22, Helpdesk a écrit :\n"
        + QUOTE,
        "PDR\nMessagerie pleine.",
    ),
    (
        "fr-roundcube-numeric-date",
        "APPEL\nRappelé, redémarrage demandé.\n\n"
        "Le 2016-11-16 02:22, Helpdesk a écrit :\n" + QUOTE,
        "APPEL\nRappelé, redémarrage demandé.",
    ),
    (
        "en-thunderbird-bottom-posted",
        "On 04/02/2012 06:26 PM, Helpdesk wrote:\n" + QUOTE_EN + "\nREFUSE\n"
        "Still broken.\n",
        "REFUSE\nStill broken.",
    ),
    (
        "en-inline-answers",
        "On Dec 15, 2024, at 2:00 PM, Helpdesk <helpdesk@example.com> wrote:\n"
        "> Which printer?\n\nThe one on floor 2.\n\n> Since when?\n\nYesterday.\n",
        "The one on floor 2.\n\nYesterday.",
    ),
    (
        "en-iphone",
        "ACCEPT\n\nSent from my iPhone\n\n"
        "> On Nov 15, 2021, at 19:42, Helpdesk <helpdesk@example.com> wrote:\n"
        + QUOTE_EN,
        "ACCEPT",
    ),
    (
        "fr-iphone",
        "ACCEPTER\n\nEnvoyé de mon iPhone\n\n"
        "> Le 15 nov. 2021 à 19:42, Helpdesk <helpdesk@example.com> a écrit :\n"
        + QUOTE,
        "ACCEPTER",
    ),
    (
        "de-thunderbird",
        "RESOLVED\nDrucker ersetzt.\n\n"
        "Am 15.11.2021 um 19:42 schrieb Helpdesk <helpdesk@example.com>:\n"
        "> Drucker defekt.\n",
        "RESOLVED\nDrucker ersetzt.",
    ),
    (
        "de-gmail-mobile",
        "ACCEPT\n\nHelpdesk <helpdesk@example.com> schrieb am Mo., 15. Nov. 2021,"
        " 19:42:\n\n> Drucker defekt.\n",
        "ACCEPT",
    ),
    (
        "de-outlook",
        "CLAIM\n\nVon: Helpdesk <helpdesk@example.com>\n"
        "Gesendet: Montag, 15. November 2021 19:42\nAn: Technik\nBetreff: Neu\n",
        "CLAIM",
    ),
    (
        "de-iphone",
        "ACCEPT\n\nVon meinem iPhone gesendet\n\n> Am 15.11.2021 um 19:42 schrieb X:\n",
        "ACCEPT",
    ),
    (
        "es-gmail",
        "ACCEPT\nGracias.\n\nEl lun, 15 nov 2021 a las 19:42, Helpdesk "
        "(<helpdesk@example.com>) escribió:\n> Ticket resuelto.\n",
        "ACCEPT\nGracias.",
    ),
    (
        "es-outlook",
        "REFUSE\nSigue sin funcionar.\n\nDe: Helpdesk <helpdesk@example.com>\n"
        "Enviado: lunes, 15 de noviembre de 2021 19:42\nPara: Ana\nAsunto: Resuelto\n",
        "REFUSE\nSigue sin funcionar.",
    ),
    (
        "es-iphone",
        "ACCEPT\n\nEnviado desde mi iPhone\n\n> El 15 nov 2021, a las 19:42, X"
        " escribió:\n",
        "ACCEPT",
    ),
    (
        "it-gmail",
        "ACCEPT\n\nIl giorno lun 15 nov 2021 alle ore 19:42 Helpdesk "
        "<helpdesk@example.com> ha scritto:\n> Ticket risolto.\n",
        "ACCEPT",
    ),
    (
        "it-in-data",
        'RATE 4\n\nIn data 11 ottobre 2017 21:11:31 "Helpdesk" '
        "<helpdesk@example.com> ha scritto:\n\nBuongiorno\n",
        "RATE 4",
    ),
    (
        "it-outlook",
        "CANCEL\n\nDa: Helpdesk <helpdesk@example.com>\n"
        "Inviato: lunedì 15 novembre 2021 19:42\nA: Marco\nOggetto: Ticket\n",
        "CANCEL",
    ),
    (
        "it-iphone",
        "ACCEPT\n\nInviato da iPhone\n\n> Il giorno 15 nov 2021, alle ore 19:42, X"
        " ha scritto:\n",
        "ACCEPT",
    ),
    (
        "zoho",
        "CLAIM\n\n---- On Wed, 24 Feb 2021 14:02:50 +0530 helpdesk@example.com"
        " wrote ----\n\nPrinter down\n",
        "CLAIM",
    ),
    (
        "gmail-forward",
        "NOTE\nSee the vendor's answer below.\n\n"
        "---------- Forwarded message ---------\nFrom: Vendor <v@vendor.example>\n",
        "NOTE\nSee the vendor's answer below.",
    ),
    (
        "unknown-language-attribution",
        'ACCEPT\n\n2013.02.08. 7:31 keltezéssel, "Helpdesk" írta:\n> Kész.\n',
        "ACCEPT",
    ),
    (
        "signature-delimiter",
        "RESOLVED\nDone.\n\n-- \nAlice, IT\n\n" + QUOTE_EN,
        "RESOLVED\nDone.",
    ),
    (
        "crlf-line-endings",
        "ACCEPT\r\n\r\nOn 04/02/2012 06:26 PM, Helpdesk wrote:\r\n> Resolved.\r\n",
        "ACCEPT",
    ),
    (
        "cr-only-line-endings",
        "ACCEPT\rMerci\r\rLe 16/11/2021 à 02:22, Helpdesk a écrit :\r> Résolu.\r",
        "ACCEPT\nMerci",
    ),
]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(reply, expected) for _, reply, expected in OWN_SAMPLES],
    ids=[client for client, _, _ in OWN_SAMPLES],
)
def test_own_reply_gives_only_the_new_text(reply: str, expected: str) -> None:
    assert new_text(reply) == expected


# New text that looks a little like a quote header but is not one.
KEPT_AS_WRITTEN = [
    "On the other hand, the printer works.\nOn average it jams twice a day.",
    "Sent from my desk, which is easier than my phone.",
    "The data comes from: accounting\nFrom: the budget file\nNo date given",
    "De : moi\nÀ : toi\nmerci",
    "Le 15/11 à 14h, pouvez-vous passer ?\nMerci",
    "NOTE\nThe user wrote: it fails on Mondays.",
    "RESOLVED\n    indented line\n\tand a tab",
    "Here is the log\n------\nline 1",
]


@pytest.mark.parametrize("text", KEPT_AS_WRITTEN)
def test_text_without_quote_is_kept(text: str) -> None:
    assert new_text(text) == text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("", ""),
        ("\n\n   \n", ""),
        (QUOTE_EN, ""),
        ("On 04/02/2012 06:26 PM, Helpdesk wrote:\n\nNo quote marks here\n", ""),
        ("Sent from my iPhone\n\n" + QUOTE_EN, ""),
        ("On 04/02/2012 06:26 PM, Helpdesk wrote:\n\n", ""),
        ("\n\n  ACCEPT\n\n\n", "  ACCEPT"),
        ("ACCEPT\n> quoted\n> more\n\n\n\nthanks", "ACCEPT\n\nthanks"),
        ("ACCEPT\n_____________________\n", "ACCEPT"),
    ],
    ids=[
        "empty",
        "blank",
        "only-quoted",
        "header-then-unquoted-original",
        "only-signature",
        "only-header",
        "blank-lines-around",
        "blank-runs-collapsed",
        "trailing-rule",
    ],
)
def test_edges(reply: str, expected: str) -> None:
    assert new_text(reply) == expected


def test_languages_limit_the_vocabularies() -> None:
    german = "ACCEPT\n\nVon: Helpdesk\nGesendet: Montag, 15. November 2021 19:42\n"
    assert new_text(german, languages=("fr",)) == german.rstrip("\n")
    assert new_text(german, languages=("DE",)) == "ACCEPT"


def test_unknown_language_is_ignored() -> None:
    reply = "ACCEPT\n\nOn 04/02/2012 06:26 PM, Helpdesk wrote:\n> Resolved.\n"
    assert new_text(reply, languages=("xx",)) == "ACCEPT"


def test_library_cuts_what_it_knows_beyond_our_rules() -> None:
    # mail-parser-reply also knows "Subject:/To:" blocks without a From line.
    reply = "RESOLVED\nDone.\n\nTo: Paul <paul@example.com>\nSubject: Printer\n"
    assert new_text(reply) == "RESOLVED\nDone."


def test_library_cut_inside_a_line_is_not_taken() -> None:
    # The library finds headers with str.find, so an attribution copied inside
    # an earlier line would make it cut mid-line: our text is kept instead.
    reply = "Hello\nsee On Monday Bob wrote:\nOn Monday Bob wrote:\nmore"
    assert new_text(reply) == reply


def test_library_cut_inside_the_first_line_is_not_taken() -> None:
    reply = "see On Monday Bob wrote:\nOn Monday Bob wrote:\nmore"
    assert new_text(reply) == reply


def test_long_lines_are_never_headers() -> None:
    # Zoho's attribution has no colon, so mail-parser-reply leaves it alone.
    long_line = "---- On 24 Feb 2021 " + "x" * 500 + " wrote ----"
    reply = f"ACCEPT\n{long_line}\n> quoted"
    assert new_text(reply) == f"ACCEPT\n{long_line}"


def test_long_wrapped_header_gives_up() -> None:
    first = "---- On 24 Feb 2021 " + "y" * 370
    reply = f"ACCEPT\n\n{first}\nBob wrote ----\n> quoted\n"
    assert new_text(reply) == f"ACCEPT\n\n{first}\nBob wrote ----"


def test_long_dated_line_above_a_quote_is_kept() -> None:
    long_line = "2013.02.08. " + "z" * 400 + ":"
    assert new_text(f"ACCEPT\n{long_line}\n> quoted") == f"ACCEPT\n{long_line}"


def test_very_long_new_text_is_cut_by_our_rules_alone() -> None:
    body = "lorem ipsum dolor sit amet\n" * 5000
    reply = f"NOTE\n{body}To: Paul\nSubject: x\n\nOn 04/02/2012 06:26 PM, X wrote:\n> q"
    # Past the size limit the library's extra cut (To:/Subject:) is not tried.
    assert new_text(reply) == f"NOTE\n{body}To: Paul\nSubject: x"


def test_library_cut_after_a_repeated_line() -> None:
    reply = "ACCEPT\nok\nok\n\nTo: Paul <paul@example.com>\nSubject: Printer\n"
    assert new_text(reply) == "ACCEPT\nok\nok"


# Replies written for issue 16, one per quoting style the first rules missed:
# (client, reply as sent, expected new text).
LANGUAGE_SAMPLES = [
    (
        "ru-thunderbird-attribution",
        "ПРИНЯТЬ\nВсё работает, спасибо.\n\n"
        "15.11.2021 19:42, пользователь Helpdesk написал:\n"
        "Ваша заявка решена. Ответьте ПРИНЯТЬ или ОТКЛОНИТЬ.\n",
        "ПРИНЯТЬ\nВсё работает, спасибо.",
    ),
    (
        "ru-outlook-header-block",
        "ОТКЛОНИТЬ\nПринтер снова не печатает.\n\n"
        "От: Helpdesk <helpdesk@example.com>\n"
        "Отправлено: 15 ноября 2021 г. 19:42\n"
        "Кому: Иван Петров <ivan@example.com>\n"
        "Тема: [HD I211115_0001] Принтер\n\n"
        "Ваша заявка решена.\n",
        "ОТКЛОНИТЬ\nПринтер снова не печатает.",
    ),
    (
        "ru-iphone-signature",
        "ПРИНЯТЬ\n\nОтправлено с iPhone\n\nВаша заявка решена.\n",
        "ПРИНЯТЬ",
    ),
    (
        "de-gmail-wrapped-attribution",
        "ACCEPT\nDanke, läuft wieder.\n\n"
        "Helpdesk <helpdesk@example.com> schrieb am Fr., 28.\n"
        "Jan. 2016 um 10:15:\n"
        "Ihr Ticket wurde gelöst.\n",
        "ACCEPT\nDanke, läuft wieder.",
    ),
    (
        "no-gmail-attribution",
        "ACCEPT\nTakk, det virker.\n\n"
        "Den tor. 28. jan. 2016 kl. 10:15 skrev Helpdesk <helpdesk@example.com>:\n"
        "Saken din er løst.\n",
        "ACCEPT\nTakk, det virker.",
    ),
    (
        "no-ipad-signature",
        "ACCEPT\n\nSendt fra min iPad\n\nSaken din er løst.\n",
        "ACCEPT",
    ),
    (
        "da-outlook-header-block",
        "REFUSE\nSkærmen er stadig sort.\n\n"
        "Fra: Helpdesk <helpdesk@example.com>\n"
        "Sendt: 28. januar 2016 10:15\n"
        "Til: Mette Hansen <mette@example.com>\n"
        "Emne: Skærm\n\n"
        "Din sag er løst.\n",
        "REFUSE\nSkærmen er stadig sort.",
    ),
    (
        "sv-outlook-header-block",
        "ACCEPT\nTack, det fungerar.\n\n"
        "Från: Helpdesk <helpdesk@example.com>\n"
        "Skickat: den 28 januari 2016 10:15\n"
        "Till: Anna Svensson <anna@example.com>\n"
        "Ämne: Skrivare\n\n"
        "Ditt ärende är löst.\n",
        "ACCEPT\nTack, det fungerar.",
    ),
    (
        "sv-iphone-signature",
        "ACCEPT\n\nSkickat från min iPhone\n\nDitt ärende är löst.\n",
        "ACCEPT",
    ),
    (
        "pt-gmail-wrapped-attribution",
        "ACCEPT\nObrigado, funciona.\n\n"
        "Em sex., 28 de jan. de 2016 às 10:15, Helpdesk <helpdesk@example.com>\n"
        "escreveu:\n"
        "O seu pedido foi resolvido.\n",
        "ACCEPT\nObrigado, funciona.",
    ),
    (
        "pt-iphone-signature",
        "ACCEPT\n\nEnviado do meu iPhone\n\nO seu pedido foi resolvido.\n",
        "ACCEPT",
    ),
    (
        "pl-thunderbird-wrapped-attribution",
        "ACCEPT\nDziękuję, działa.\n\n"
        "W dniu 28.01.2016 o 10:15, użytkownik Helpdesk <helpdesk@example.com>\n"
        "napisał:\n"
        "Zgłoszenie zostało rozwiązane.\n",
        "ACCEPT\nDziękuję, działa.",
    ),
    (
        "pl-outlook-header-block",
        "REFUSE\nNadal nie działa.\n\n"
        "Od: Helpdesk <helpdesk@example.com>\n"
        "Wysłano: czwartek, 28 stycznia 2016 10:15\n"
        "Do: Jan Kowalski <jan@example.com>\n"
        "Temat: Drukarka\n\n"
        "Zgłoszenie zostało rozwiązane.\n",
        "REFUSE\nNadal nie działa.",
    ),
    (
        "pl-iphone-signature",
        "ACCEPT\n\nWysłane z iPhone'a\n\nZgłoszenie zostało rozwiązane.\n",
        "ACCEPT",
    ),
    (
        "nl-apple-mail-attribution",
        "ACCEPT\nBedankt, het werkt.\n\n"
        "Op 28 jan. 2016, om 10:15 heeft Helpdesk <helpdesk@example.com>"
        " het volgende geschreven:\n\n"
        "Uw melding is opgelost.\n",
        "ACCEPT\nBedankt, het werkt.",
    ),
    (
        "nl-outlook-header-block",
        "REFUSE\nHet werkt nog steeds niet.\n\n"
        "Van: Helpdesk <helpdesk@example.com>\n"
        "Verzonden: donderdag 28 januari 2016 10:15\n"
        "Aan: Jan de Vries <jan@example.com>\n"
        "Onderwerp: Printer\n\n"
        "Uw melding is opgelost.\n",
        "REFUSE\nHet werkt nog steeds niet.",
    ),
    (
        "nl-iphone-signature",
        "ACCEPT\n\nVerzonden vanaf mijn iPhone\n\nUw melding is opgelost.\n",
        "ACCEPT",
    ),
    (
        "cs-thunderbird-wrapped-attribution",
        "ACCEPT\nDěkuji, funguje to.\n\n"
        "Dne 28. 1. 2016 v 10:15 Helpdesk <helpdesk@example.com>\n"
        "napsal(a):\n"
        "Váš požadavek byl vyřešen.\n",
        "ACCEPT\nDěkuji, funguje to.",
    ),
    (
        "ja-outlook-header-block",
        "ACCEPT\nありがとうございます。\n\n"
        "差出人: Helpdesk <helpdesk@example.com>\n"
        "送信日時: 2016年1月28日 10:15\n"
        "宛先: 山田 <yamada@example.com>\n"
        "件名: プリンター\n\n"
        "チケットは解決されました。\n",
        "ACCEPT\nありがとうございます。",
    ),
    (
        "zh-attribution",
        "ACCEPT\n谢谢，已经好了。\n\n"
        "2016年1月28日 10:15，Helpdesk <helpdesk@example.com> 写道：\n"
        "您的工单已解决。\n",
        "ACCEPT\n谢谢，已经好了。",
    ),
    (
        "ko-iphone-signature",
        "ACCEPT\n\n내 iPhone에서 보냄\n\n티켓이 해결되었습니다.\n",
        "ACCEPT",
    ),
]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(reply, expected) for _, reply, expected in LANGUAGE_SAMPLES],
    ids=[client for client, _, _ in LANGUAGE_SAMPLES],
)
def test_reply_in_other_languages_gives_only_the_new_text(
    reply: str, expected: str
) -> None:
    assert new_text(reply) == expected


# New text in those languages that looks a little like a quote header.
KEPT_IN_OTHER_LANGUAGES = [
    "Den skrivaren på plan 2 skrev ut tomma sidor.\nTack",
    "Op de tweede verdieping schreef iemand: printer kapot.",
    "Fra: regnskab\nTil: mig\ntak",
    "Sendt fra min kollega, som har samme problem.",
    "W dniu wczorajszym drukarka nie działała.\nPozdrawiam",
]


@pytest.mark.parametrize("text", KEPT_IN_OTHER_LANGUAGES)
def test_text_in_other_languages_without_quote_is_kept(text: str) -> None:
    assert new_text(text) == text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "2 PCs are down.\n"
            "Den 28. jan. 2016 kl. 10:15 skrev Helpdesk <h@example.com>:\n"
            "> Resolved.\n",
            "2 PCs are down.",
        ),
        (
            "NOTE\n15 printers checked.\n"
            "15.11.2021 19:42, пользователь Helpdesk написал:\nВаша заявка решена.\n",
            "NOTE\n15 printers checked.",
        ),
        ("NOTE\nThe disk is full.\nData: 5 GB used\nDo: nothing yet", None),
    ],
    ids=["dated-text-above-attribution", "dated-line-kept", "polish-headers-alone"],
)
def test_text_next_to_a_new_attribution_is_kept(
    reply: str, expected: str | None
) -> None:
    assert new_text(reply) == (reply if expected is None else expected)


# Styles the corpus showed beyond the list: (client, reply, new text).
MORE_LANGUAGE_SAMPLES = [
    (
        "ru-gmail-attribution-without-verb",
        "ПРИНЯТЬ\n\nср, 30 апр. 2025\u202fг. в 15:19, Helpdesk <h@example.com>:\n\n"
        "Ваша заявка решена.\n",
        "ПРИНЯТЬ",
    ),
    (
        "fi-gmail-wrapped-attribution",
        "ACCEPT\nKiitos, toimii.\n\npe 20. lokakuuta 2017 klo 17.50 Helpdesk\n"
        "<h@example.com> kirjoitti:\n\nTiketti on ratkaistu.\n",
        "ACCEPT\nKiitos, toimii.",
    ),
    (
        "ru-mailru-signature",
        "ACCEPT\n\nОтправлено из мобильной Почты Mail.ru\n\nЗаявка решена.\n",
        "ACCEPT",
    ),
]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(reply, expected) for _, reply, expected in MORE_LANGUAGE_SAMPLES],
    ids=[client for client, _, _ in MORE_LANGUAGE_SAMPLES],
)
def test_more_styles_give_only_the_new_text(reply: str, expected: str) -> None:
    assert new_text(reply) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ACCEPT\nSendt fra lageret i dag.\nMvh",
        "REFUSE\nОтправлено с задержкой\nспасибо",
        "NOTE\nWysłane z opóźnieniem\nok",
        "NOTE\nEnviado do escritório ontem\nok",
        "NOTE\nSendt fra mailserveren i går\nok",
    ],
)
def test_sent_from_without_a_device_is_text(text: str) -> None:
    assert new_text(text) == text
