"""Bench corpus: deterministic helpdesk mails (seeded random). Pure, no I/O.

French and English mails to the helpdesk: plain text, text + HTML
alternatives, HTML-only, a share with 1-3 attachments of 10 KB to 2 MB, and
replies to tickets opened earlier in the same corpus. A reply names its
ticket in the subject, `[HD I261129_0007]`, with the number the daemon will
give (per type and calendar day, in mailbox order): the day is an argument,
so the same seed and day give the same bytes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

INCIDENT = "helpdesk@example.com"
REQUEST = "demandes@example.com"
TECHNICIANS = ("alice@example.com", "bob@example.com")
TAG = "HD"

ATTACHMENT_SHARE = 0.15  # mails with 1-3 attachments
HTML_ONLY_SHARE = 0.10
ALTERNATIVE_SHARE = 0.30  # text + HTML, as Outlook and Thunderbird send
REPLY_SHARE = 0.15  # of all mails, once a ticket exists to reply to
CLAIM_SHARE = 0.35  # of replies: a technician's CLAIM; the rest comment
REQUEST_SHARE = 0.15  # new mails to the request address (S numbers)
MIN_ATTACHMENT = 10 * 1024
MAX_ATTACHMENT = 2 * 1024 * 1024
_DATE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_FIRST = (
    "Marie",
    "Jean",
    "Sophie",
    "Luc",
    "Emma",
    "Paul",
    "Chloé",
    "Hugo",
    "Alice",
    "Noah",
    "Léa",
    "Tom",
    "Zoé",
    "Louis",
    "Inès",
    "Jules",
    "Olivia",
    "James",
    "Amelia",
    "Oliver",
    "Grace",
    "Henry",
    "Ava",
    "Jack",
)
_LAST = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Wilson",
    "Evans",
    "Walker",
    "Wright",
)
_APPS = (
    "Messagerie",
    "SAP",
    "VPN",
    "Imprimante",
    "Teams",
    "Outlook",
    "Intranet",
    "Paie",
    "CRM",
    "Wi-Fi",
    "Poste de travail",
    "SharePoint",
)
_TEXT = {
    "fr": {
        "subjects": (
            "Imprimante du 2e étage en panne",
            "Impossible de me connecter au VPN",
            "Mot de passe expiré",
            "Écran noir au démarrage",
            "Outlook plante",
            "Demande d'accès au dossier partagé",
            "Nouveau poste pour un arrivant",
            "Lenteurs sur l'application de paie",
            "Badge refusé à l'accueil",
            "Le Wi-Fi coupe toutes les 5 minutes",
            "Licence Office à renouveler",
        ),
        "keys": ("Application", "Urgence", "Téléphone"),
        "urgency": ("basse", "moyenne", "haute"),
        "sentences": (
            "Depuis ce matin je ne peux plus travailler correctement.",
            "Le message d'erreur apparaît dès que j'ouvre l'application.",
            "J'ai déjà redémarré le poste, sans effet.",
            "Mes collègues du même bureau ont le même problème.",
            "C'est bloquant pour la clôture mensuelle de vendredi.",
            "Vous trouverez une capture d'écran en pièce jointe.",
            "Merci de me rappeler dès que possible.",
            "Le problème est apparu après la dernière mise à jour.",
        ),
        "hello": "Bonjour,",
        "bye": "Cordialement,",
        "reply": (
            "Merci, je reste disponible cet après-midi.",
            "Le problème est revenu, pouvez-vous regarder ?",
            "Je vous joins le message d'erreur complet.",
        ),
        "quote": "Le {date}, {who} a écrit :",
        "re": "RE:",
    },
    "en": {
        "subjects": (
            "Printer on the 2nd floor is down",
            "Cannot connect to the VPN",
            "Password expired",
            "Black screen at start-up",
            "Outlook keeps crashing",
            "Access to the shared folder",
            "New laptop for a starter",
            "Payroll application is slow",
            "Badge refused at the front desk",
            "Wi-Fi drops every 5 minutes",
            "Office licence to renew",
        ),
        "keys": ("Application", "Urgency", "Phone"),
        "urgency": ("low", "medium", "high"),
        "sentences": (
            "Since this morning I cannot work properly.",
            "The error message shows as soon as I open the application.",
            "I already restarted the computer, it did not help.",
            "My colleagues in the same office have the same problem.",
            "This blocks the month-end closing on Friday.",
            "Please find a screenshot attached.",
            "Please call me back as soon as possible.",
            "The problem started after the last update.",
        ),
        "hello": "Hello,",
        "bye": "Best regards,",
        "reply": (
            "Thanks, I am available this afternoon.",
            "The problem is back, could you have a look?",
            "Here is the full error message.",
        ),
        "quote": "On {date}, {who} wrote:",
        "re": "Re:",
    },
}
_ATTACHMENT_TYPES = (
    ("application", "pdf", "rapport.pdf"),
    ("image", "png", "capture.png"),
    ("image", "jpeg", "photo.jpg"),
    (
        "application",
        "vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "export.xlsx",
    ),
    ("text", "plain", "erreur.log"),
    ("application", "zip", "logs.zip"),
)


@dataclass(frozen=True, slots=True)
class BenchMail:
    """One generated mail and what the daemon should make of it."""

    raw: bytes
    sender: str
    kind: str  # new | reply | claim
    number: str  # the ticket it opens (new) or names (reply, claim)
    attachments: int
    is_html_only: bool


@dataclass
class _Ticket:
    number: str
    sender: str
    name: str
    subject: str
    language: str


def generate(
    count: int,
    *,
    seed: int,
    day: str,
    replies: bool = True,
    prefix: str = "user",
) -> list[BenchMail]:
    """Return count mails in mailbox order; day is the calendar's yymmdd."""
    rng = random.Random(seed)
    opened: list[_Ticket] = []
    claimed: set[str] = set()
    sequences = {"I": 0, "S": 0}
    mails: list[BenchMail] = []
    for index in range(count):
        if replies and opened and rng.random() < REPLY_SHARE:
            mails.append(_reply(rng, index, seed, opened, claimed))
            continue
        letter = "S" if rng.random() < REQUEST_SHARE else "I"
        sequences[letter] += 1
        number = f"{letter}{day}_{sequences[letter]:04d}"
        mail, ticket = _new(rng, index, seed, number, f"{prefix}{index:05d}")
        opened.append(ticket)
        mails.append(mail)
    return mails


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _base(
    rng: random.Random, index: int, seed: int, sender: str, name: str, to: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Date"] = format_datetime(_DATE + timedelta(seconds=index))
    msg["Message-ID"] = f"<bench.{seed}.{index}@client.example.com>"
    msg["X-Mailer"] = rng.choice(
        ("Microsoft Outlook 16.0", "Mozilla Thunderbird", "Apple Mail (2.3731)")
    )
    return msg


def _new(
    rng: random.Random, index: int, seed: int, number: str, local: str
) -> tuple[BenchMail, _Ticket]:
    language = rng.choice(("fr", "en"))
    text = _TEXT[language]
    name = _person(rng)
    sender = f"{local}@example.com"
    to = REQUEST if number.startswith("S") else INCIDENT
    subject = rng.choice(text["subjects"])
    msg = _base(rng, index, seed, sender, name, to)
    msg["Subject"] = subject
    keys = text["keys"]
    fields = [
        f"{keys[0]}: {rng.choice(_APPS)}",
        f"{keys[1]}: {rng.choice(text['urgency'])}",
        f"{keys[2]}: 01 {rng.randint(10, 99)} {rng.randint(10, 99)} "
        f"{rng.randint(10, 99)} {rng.randint(10, 99)}",
    ]
    sentences = rng.sample(text["sentences"], rng.randint(2, 5))
    body = "\n".join(
        (*fields, "", text["hello"], "", " ".join(sentences), "", text["bye"], name)
    )
    is_html_only = rng.random() < HTML_ONLY_SHARE
    html = _html(fields, text["hello"], sentences, text["bye"], name)
    if is_html_only:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body + "\n")
        if rng.random() < ALTERNATIVE_SHARE:
            msg.add_alternative(html, subtype="html")
    attached = _attach(rng, msg) if rng.random() < ATTACHMENT_SHARE else 0
    mail = BenchMail(
        msg.as_bytes(policy=SMTP), sender, "new", number, attached, is_html_only
    )
    return mail, _Ticket(number, sender, name, subject, language)


def _html(
    fields: list[str], hello: str, sentences: list[str], bye: str, name: str
) -> str:
    lines = "".join(f"<div>{line}</div>" for line in fields)
    return (
        "<html><head><style>p{font-family:Calibri}</style></head><body>"
        f"{lines}<p>{hello}</p><p>{' '.join(sentences)}</p>"
        f"<p>{bye}<br><b>{name}</b></p></body></html>\n"
    )


def _attach(rng: random.Random, msg: EmailMessage) -> int:
    count = rng.randint(1, 3)
    for n in range(count):
        maintype, subtype, filename = rng.choice(_ATTACHMENT_TYPES)
        size = int(
            math.exp(rng.uniform(math.log(MIN_ATTACHMENT), math.log(MAX_ATTACHMENT)))
        )
        msg.add_attachment(
            rng.randbytes(size),
            maintype=maintype,
            subtype=subtype,
            filename=f"{n + 1}-{filename}",
        )
    return count


def _reply(
    rng: random.Random,
    index: int,
    seed: int,
    opened: list[_Ticket],
    claimed: set[str],
) -> BenchMail:
    unclaimed = [t for t in opened[-200:] if t.number not in claimed]
    if unclaimed and rng.random() < CLAIM_SHARE:
        ticket = rng.choice(unclaimed)
        claimed.add(ticket.number)
        sender = rng.choice(TECHNICIANS)
        name, kind, new_text = sender.split("@")[0].title(), "claim", "CLAIM"
    else:
        ticket = rng.choice(opened)
        sender, name, kind = ticket.sender, ticket.name, "reply"
        new_text = rng.choice(_TEXT[ticket.language]["reply"])
    text = _TEXT[ticket.language]
    to = REQUEST if ticket.number.startswith("S") else INCIDENT
    msg = _base(rng, index, seed, sender, name, to)
    msg["Subject"] = f"{text['re']} [{TAG} {ticket.number}] {ticket.subject}"
    quoted = "\n".join(
        (
            text["quote"].format(date="02/03/2026 09:00", who="Helpdesk"),
            f"> [{TAG} {ticket.number}] {ticket.subject}",
            "> ...",
        )
    )
    msg.set_content(f"{new_text}\n\n{name}\n\n{quoted}\n")
    return BenchMail(msg.as_bytes(policy=SMTP), sender, kind, ticket.number, 0, False)


def summary(mails: list[BenchMail]) -> dict[str, int]:
    """Count the corpus by kind, for the results file."""
    return {
        "mails": len(mails),
        "new": sum(m.kind == "new" for m in mails),
        "replies": sum(m.kind == "reply" for m in mails),
        "claims": sum(m.kind == "claim" for m in mails),
        "html_only": sum(m.is_html_only for m in mails),
        "with_attachments": sum(m.attachments > 0 for m in mails),
        "bytes": sum(len(m.raw) for m in mails),
    }
