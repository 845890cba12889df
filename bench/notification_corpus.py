"""`python -m bench.notification_corpus OUT_DIR`: every mail maild queues for a
scripted week of helpdesk life, one file each. I/O.

The proof that a change to the notification path changes no notification: run
it before and after, on the same interpreter, and `diff -r` the two folders.
The script drives the real application in this process (`build()` on a
SQLite file, a fake clock), in French then in English, through every template
and audience: new tickets (a beneficiary taken, outside, refused; a service
request; attachments; watchers), comments each way, every command and its
refusals, HELP and LIST for each role, a reply to a closed ticket, a reply
from a stranger, the new-ticket cap, refused mails (over a limit, unreadable),
every SLA timer and the morning digests as the clock moves, and delivery
failures through the outbox sender's `on_failed` hook.

It writes `OUT_DIR/<language>/NNNN.eml`, the bytes of each queued mail in
queue order, with the random parts made stable: the ticket token and the
random part of our Message-IDs (numbered in order of first appearance, so a
reply still names the mail it answers), the MIME boundaries and the Date
header (the wall clock). `OUT_DIR/<language>/index.txt` lists them: number,
recipients, decoded subject.

    .venv/bin/python -m bench.notification_corpus /tmp/corpus
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from maild.config import load_settings
from maild.domain import MailOrigin
from maild.errors import DeliveryFailed
from tests.support.daemon import write_config

PARIS = ZoneInfo("Europe/Paris")
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
HELPDESK = "helpdesk@example.com"
REQUESTS = "demandes@example.com"
POOL = "techniciens@example.com"
MARIE = "Marie Curie <marie@example.com>"
PAUL = "paul@example.com"
JEAN = "jean@example.com"
ALICE = "alice@example.com"  # technician
BOB = "bob@example.com"  # technician
CHEF = "chef@example.com"  # supervisor
STRANGER = "zoe@example.com"  # on no ticket, not staff
GONE = "gone@example.com"  # every mail to this address is refused for good
EXTRA = """
[security]
trusted_authserv_ids = ["mx.example.com"]

[limits]
max_mail_bytes = 200000
max_attachment_bytes = 4096
max_parts = 20
max_mime_depth = 5
max_header_bytes = 8192
auto_answers_per_hour = 1000
auto_answers_per_day = 1000
ticket_answers_per_10_minutes = 1000
ticket_answers_per_hour = 1000
new_tickets_per_hour = 8
"""


# --- what the script knows of the application -----------------------------------
# build() and its parts: service.handle, service.check_sla, and the outbox
# sender (its mailer, deliver_due); the SQLite tables `outbox` (id, data,
# message_id, recipients) and `tickets` (id, number), read directly. To run it
# on another layout, adapt build_parts (before issue 14: maild.daemon).


def build_parts(config: Path, clock: Callable[[], datetime]) -> Any:
    """The application, wired as the daemon wires it, on a fake clock."""
    from maild.runtime.daemon import build

    return build(load_settings(config), clock, parse_workers=1)


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def queued_mail(database: Path) -> list[bytes]:
    """The bytes of every mail in the outbox, in queue order."""
    return [
        bytes(data) for (data,) in rows(database, "SELECT data FROM outbox ORDER BY id")
    ]


# --- a desk: mail in, clock moved, deliveries failed ------------------------------


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


class RefusingMailer:
    """A relay that refuses for good every mail to one address, takes the rest."""

    def __init__(self, refused: str) -> None:
        self.refused = refused

    def send(
        self, message_id: str, sender: str, recipients: tuple[str, ...], data: bytes
    ) -> None:
        if self.refused in recipients:
            raise DeliveryFailed(f"{self.refused}: 550 5.1.1 <{self.refused}> unknown")

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class Desk:
    directory: Path
    language: str
    clock: Clock = field(default_factory=lambda: Clock(MONDAY))
    sent: int = 0
    parts: Any = None

    def __post_init__(self) -> None:
        config, _ = write_config(
            self.directory, sink_port=None, language=self.language, extra=EXTRA
        )
        self.parts = build_parts(config, self.clock)

    def mail(
        self,
        sender: str,
        subject: str,
        body: str,
        *,
        to: str = HELPDESK,
        cc: tuple[str, ...] = (),
        attachment: tuple[str, bytes] | None = None,
        is_verified: bool = True,
        headers: tuple[str, ...] = (),
        size: int | None = None,
    ) -> None:
        """Hand one mail to the service, as the intake would."""
        self.sent += 1
        address = sender.rpartition("<")[2].rstrip(">")
        head = [
            f"From: {sender}",
            f"To: {to}",
            *([f"Cc: {', '.join(cc)}"] if cc else []),
            f"Subject: {subject}",
            f"Message-ID: <m{self.sent:03d}@client.example.com>",
            "Date: Mon, 30 Nov 2026 09:00:00 +0100",
            *headers,
        ]
        if is_verified:
            domain = address.rpartition("@")[2]
            head.insert(
                0,
                f"Authentication-Results: mx.example.com; dmarc=pass "
                f"header.from={domain}",
            )
        self.handle("\r\n".join(head).encode() + _body(body, attachment), size)

    def handle(self, raw: bytes, size: int | None = None) -> None:
        self.parts.service.handle(
            raw,
            MailOrigin(source="replay", envelope_recipients=(HELPDESK,), size=size),
        )

    def reply(self, sender: str, number: str, body: str, **options: Any) -> None:
        self.mail(sender, f"Re: [HD {number}] suivi", body, **options)

    def at(self, moment: datetime) -> None:
        """Move the clock to moment and fire what is due."""
        self.clock.now = moment
        self.parts.service.check_sla(moment)

    def later(self, **delta: float) -> None:
        """Move the clock on, firing nothing."""
        self.clock.now += timedelta(**delta)

    @property
    def database(self) -> Path:
        return self.directory / "maild.db"

    def last_ticket(self) -> str:
        ((number,),) = rows(
            self.database, "SELECT number FROM tickets ORDER BY id DESC LIMIT 1"
        )
        return str(number)

    def last_message_id_to(self, address: str) -> str:
        """The Message-ID of the last mail queued for address."""
        queued = rows(
            self.database, "SELECT message_id, recipients FROM outbox ORDER BY id DESC"
        )
        return next(str(m) for m, to in queued if address in str(to).split(","))

    def refuse_deliveries_to(self, address: str) -> None:
        """Run the outbox sender once on a relay that refuses address for good."""
        outbox = self.parts.outbox
        outbox.mailer = RefusingMailer(address)
        outbox.deliver_due()

    def close(self) -> None:
        self.parts.close()


def _body(text: str, attachment: tuple[str, bytes] | None) -> bytes:
    if attachment is None:
        return (
            b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode() + b"\r\n"
        )
    name, data = attachment
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (
        "\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
        f'--b1\r\nContent-Type: application/octet-stream; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}--b1--\r\n"
    ).encode()


# --- the script -----------------------------------------------------------------


def new_tickets(desk: Desk) -> dict[str, str]:
    """Open the tickets the rest of the script works on; name them."""
    desk.mail(
        MARIE,
        "Imprimante en panne",
        "Application: Impression\nUrgence: haute\nTéléphone: 01 23 45 67 89\n\n"
        "L'imprimante du 2e étage affiche « bourrage ».",
        cc=(JEAN,),
        attachment=("photo.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
    )
    printer = desk.last_ticket()
    desk.mail(MARIE, "Poste de Eve", "Bénéficiaire: Eve <eve@outside.org>\n\nAidez-la")
    outside = desk.last_ticket()
    desk.mail(MARIE, "Pour le pool", f"Beneficiary: {POOL}\n\nMerci")
    refused = desk.last_ticket()
    desk.mail(
        PAUL,
        "Accès VPN",
        "Beneficiary: Lucie <lucie@example.com>\nUrgency: low\n\nUn accès VPN.",
        to=REQUESTS,
    )
    request = desk.last_ticket()
    desk.mail(MARIE, "Écran noir", "Urgence: basse\n\nL'écran reste noir.")
    screen = desk.last_ticket()
    desk.mail(MARIE, "Clavier", "Des touches manquent.")
    keyboard = desk.last_ticket()
    return {
        "printer": printer,
        "outside": outside,
        "refused": refused,
        "request": request,
        "screen": screen,
        "keyboard": keyboard,
    }


def comments_and_commands(desk: Desk, t: dict[str, str]) -> None:
    """Comments each way, every command, and their refusals, on the printer."""
    printer = t["printer"]
    desk.later(minutes=5)
    desk.reply(
        MARIE, printer, "Il fait aussi du bruit.", attachment=("bruit.txt", b"clac")
    )
    desk.reply(BOB, printer, "Vu en passant, c'est le rouleau.")  # internal
    desk.reply(ALICE, printer, "CLAIM\nJe m'en occupe, je passe dans l'heure.")
    desk.reply(JEAN, printer, "Je confirme, même chose chez moi.")
    desk.reply(ALICE, printer, "Pouvez-vous redémarrer l'imprimante ?")
    desk.reply(ALICE, printer, "La procédure.", attachment=("procedure.pdf", b"%PDF"))
    desk.reply(BOB, printer, "CLAIM")  # already claimed
    desk.reply(BOB, printer, "CALL")  # not the owner
    desk.reply(MARIE, printer, "RESOLVED c'est bon")  # not staff
    desk.reply(ALICE, printer, "ACCEPT")  # not the requester
    desk.reply(MARIE, printer, "ACCEPT")  # wrong state
    desk.reply(BOB, printer, "ASSIGN bob@example.com")  # not a supervisor
    desk.reply(CHEF, printer, "ASSIGN")  # missing address
    desk.reply(CHEF, printer, "ASSIGN pas-une-adresse")  # bad address
    desk.reply(CHEF, printer, "ASSIGN eve@example.com")  # not a technician
    desk.reply(ALICE, printer, "TASK")  # missing text
    desk.reply(ALICE, printer, "RESOLVE")  # near a keyword
    desk.reply(MARIE, printer, "RATE")  # missing score
    desk.reply(MARIE, printer, "RATE 9")  # bad score
    desk.reply(ALICE, printer, "CALL joint, elle redémarre\nPDR\nTASK rouleau changé")
    desk.reply(ALICE, printer, "NOTE pièce commandée\nRELEASE maintenant")
    desk.reply(ALICE, printer, "CALL", is_verified=False)  # unverified sender
    desk.reply(ALICE, printer, "RESOLVED Rouleau changé, impression OK.")
    desk.reply(MARIE, printer, "REFUSE toujours des bourrages")
    desk.reply(ALICE, printer, "RESOLU Deuxième rouleau changé.")
    # A stranger answers a mail forwarded to them: need to know.
    forwarded = (f"In-Reply-To: <{desk.last_message_id_to('marie@example.com')}>",)
    desk.mail(STRANGER, "Re: votre ticket", "Moi aussi !", headers=forwarded)
    desk.mail(STRANGER, "Re: votre ticket", "CLAIM", headers=forwarded)
    desk.reply(MARIE, printer, "ACCEPT\nRATE 4 rapide\nMerci beaucoup")
    desk.reply(MARIE, printer, "Finalement ça recommence.")  # closed ticket
    desk.mail(STRANGER, "Re: votre ticket", "Et alors ?", headers=forwarded)


def ownership(desk: Desk, t: dict[str, str]) -> None:
    """Assign, release, cancel, with and without an owner."""
    desk.later(minutes=5)
    desk.reply(CHEF, t["outside"], "ASSIGN bob@example.com\nÀ toi de voir.")
    desk.reply(BOB, t["outside"], "RELEASE")
    desk.reply(MARIE, t["refused"], "CANCEL plus besoin")  # unclaimed: the pool
    desk.reply(CHEF, t["request"], "AFFECTER alice@example.com")
    desk.reply(PAUL, t["request"], "ANNULER\nJ'ai trouvé une autre solution.")
    desk.reply(ALICE, t["keyboard"], "PRENDRE\nPDR pas de réponse")


def questions(desk: Desk) -> None:
    """HELP and LIST, for each role; a watcher asks too."""
    desk.later(minutes=5)
    for sender in (MARIE, ALICE, CHEF, JEAN):
        desk.mail(sender, "HELP", "")
        desk.mail(sender, "LISTE", "")
    desk.mail(BOB, "aide", "")


def caps_and_refusals(desk: Desk) -> None:
    """The new-ticket cap, and mail refused before it could be read."""
    desk.later(minutes=5)
    for n in range(10):
        desk.mail("gaston@example.com", f"Demande {n}", "Encore une.")
    desk.mail("big@example.com", "Très gros", "x", size=300_000)
    desk.handle(_many_parts("parts@example.com", 30))
    desk.handle(_nested("deep@example.com", 10))
    desk.handle(_big_attachment("heavy@example.com", 10_000))
    desk.mail(
        "headers@example.com",
        "Trop d'en-têtes",
        "x",
        headers=tuple(f"X-Filler-{n}: {'y' * 60}" for n in range(200)),
    )
    desk.handle(
        b"From: broken@example.com\r\nTo: helpdesk@example.com\r\n"
        b"Subject: Illisible\r\nMessage-ID: <broken@client.example.com>\r\n"
        b"Cc: =?utf-8?b?QUJDR?= <a@example.com>\r\n\r\nx\r\n"
    )
    desk.handle(
        b"From: nosubject@example.com\r\nTo: helpdesk@example.com\r\n"
        b"Message-ID: <nosubject@client.example.com>\r\n"
        b"Cc: =?utf-8?b?QUJDR?= <a@example.com>\r\n\r\nx\r\n"
    )


def _head(sender: str, subject: str, token: str) -> str:
    return (
        f"From: {sender}\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{token}@client.example.com>\r\nMIME-Version: 1.0\r\n"
    )


def _many_parts(sender: str, count: int) -> bytes:
    parts = "".join(
        f"--p\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(count)
    )
    return (
        _head(sender, "Plein de morceaux", "parts")
        + 'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
        + parts
        + "--p--\r\n"
    ).encode()


def _nested(sender: str, depth: int) -> bytes:
    body = "Content-Type: text/plain\r\n\r\nau fond\r\n"
    for level in range(depth):
        body = (
            f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n'
            f"--n{level}\r\n{body}--n{level}--\r\n"
        )
    return (_head(sender, "Transfert de transfert", "deep") + body).encode()


def _big_attachment(sender: str, size: int) -> bytes:
    data = base64.encodebytes(b"z" * size).decode().replace("\n", "\r\n")
    return (
        _head(sender, "Gros fichier", "heavy")
        + 'Content-Type: multipart/mixed; boundary="a"\r\n\r\n'
        + "--a\r\nContent-Type: text/plain\r\n\r\nle fichier\r\n"
        + '--a\r\nContent-Type: application/pdf; name="gros.pdf"\r\n'
        + "Content-Transfer-Encoding: base64\r\n\r\n"
        + data
        + "--a--\r\n"
    ).encode()


def timers_and_digests(desk: Desk, t: dict[str, str]) -> None:
    """Move the clock: re-announcements, reminders, PDR retries, breaches,
    digests, automatic closure."""
    desk.at(MONDAY.replace(hour=9, minute=30))  # re-announcements
    desk.at(MONDAY.replace(hour=10, minute=15))  # high urgency: reminder
    desk.at(MONDAY.replace(hour=11, minute=30))  # PDR retry, breaches
    desk.at(MONDAY.replace(hour=13, minute=0))
    desk.clock.now = MONDAY.replace(hour=14)
    desk.reply(ALICE, t["screen"], "CLAIM\nRESOLVED Câble rebranché.")
    desk.at(MONDAY.replace(hour=18, minute=30))
    desk.at(MONDAY.replace(hour=8, minute=30) + timedelta(days=1))  # digests
    desk.at(MONDAY.replace(hour=10) + timedelta(days=8))  # automatic closure
    desk.reply(MARIE, t["screen"], "RATE 5 parfait")  # after closure
    desk.reply(MARIE, t["screen"], "NOTER 3")


def delivery_failures(desk: Desk) -> None:
    """Mail the relay refuses for good: about a ticket, about none, to staff."""
    desk.later(minutes=5)
    desk.mail(GONE, "Souris cassée", "Elle ne clique plus.")
    desk.mail(GONE, "HELP", "")
    number = desk.last_ticket()
    desk.reply(CHEF, number, f"ASSIGN {GONE}")  # refused: a transcript to chef
    desk.refuse_deliveries_to(GONE)
    desk.refuse_deliveries_to(CHEF)  # a report is never reported


def run_script(desk: Desk) -> None:
    tickets = new_tickets(desk)
    comments_and_commands(desk, tickets)
    ownership(desk, tickets)
    questions(desk)
    timers_and_digests(desk, tickets)
    caps_and_refusals(desk)
    delivery_failures(desk)


# --- normalising and writing --------------------------------------------------------

_OWN_ID = re.compile(rb"\b([0-9a-f]{24})\.([0-9a-f]{12})@")
_BOUNDARY = re.compile(rb"=_maild_[0-9a-f]{24}")
_DATE = re.compile(rb"^Date: [^\r\n]*(\r\n[ \t][^\r\n]*)*", re.MULTILINE)


@dataclass
class Normaliser:
    """Stable names for random parts, numbered in order of first appearance."""

    tokens: dict[bytes, bytes] = field(default_factory=dict)
    randoms: dict[bytes, bytes] = field(default_factory=dict)

    def __call__(self, data: bytes) -> bytes:
        data = _OWN_ID.sub(self._own_id, data)
        data = _BOUNDARY.sub(b"=_maild_BOUNDARY", data)
        return _DATE.sub(b"Date: (wall clock)", data, count=1)

    def _own_id(self, match: re.Match[bytes]) -> bytes:
        token = self.tokens.setdefault(
            match.group(1), b"token%03d" % (len(self.tokens) + 1)
        )
        random = self.randoms.setdefault(
            match.group(2), b"random%03d" % (len(self.randoms) + 1)
        )
        return token + b"." + random + b"@"


def write_corpus(mails: list[bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    normalise = Normaliser()
    index: list[str] = []
    for number, data in enumerate(mails, start=1):
        clean = normalise(data)
        (folder / f"{number:04d}.eml").write_bytes(clean)
        message = email.message_from_bytes(clean, policy=email.policy.default)
        index.append(f"{number:04d} {message['To']} | {message['Subject']}")
    (folder / "index.txt").write_text("\n".join(index) + "\n", encoding="utf-8")


@contextmanager
def desk_in(language: str) -> Iterator[Desk]:
    with tempfile.TemporaryDirectory(prefix=f"maild-corpus-{language}-") as tmp:
        desk = Desk(Path(tmp), language)
        try:
            yield desk
        finally:
            desk.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the corpus to")
    args = parser.parse_args()
    for language in ("fr", "en"):
        with desk_in(language) as desk:
            run_script(desk)
            mails = queued_mail(desk.database)
        write_corpus(mails, args.out / language)
        print(f"{language}: {len(mails)} mails in {args.out / language}")


if __name__ == "__main__":
    main()
