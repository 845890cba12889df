"""Out-of-office replies without their headers: subject and text. Pure, no I/O.

Most auto-replies say what they are in headers (RFC 3834 `Auto-Submitted`,
`X-Autoreply`, ...), which classify reads first. Some do not: a Thunderbird
"reply with template" filter, a gateway that drops headers, an old server.
Those are told by their words, in French, English and German, with care not
to take a person who writes about an absence for a robot:

- a subject that *starts* with an auto-reply prefix followed by a colon (or
  is only that prefix): "Automatic reply:", "Réponse automatique :",
  "Automatische Antwort:", "Abwesenheitsnotiz:" are enough on their own;
  prefixes that are also ordinary topics ("Out of Office:", "Absence du
  bureau :", "Abwesenheit:", "Auto:") need an out-of-office sentence in the
  first lines of the text too;
- with no such subject, a sentence that calls the mail an automatic answer,
  or an out-of-office sentence together with when the writer is back
  ("until", "jusqu'au", "bis", "return", "retour", "wieder"), in the first
  lines of a short answer to another mail (a reply, with no question in it).

An out-of-office sentence speaks in the present or future of the writer's
own absence ("I am out of the office", "Je suis absente", "Ich bin bis ...
nicht im Büro"); "I was out of office yesterday" is not one.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from maild.core.quotes import new_text

_STRONG: Final = (
    r"automatic reply|automatic response|auto[- ]?reply|auto[- ]?response"
    r"|autoresponder|reponse automatique|automatische antwort"
    r"|out of (?:the )?office auto ?reply|abwesenheitsnotiz"
    r"|respuesta automatica|risposta automatica|automatisch antwoord|autosvar"
)
_WEAK: Final = (
    r"out of (?:the )?office|ooo|absence du bureau|absent du bureau|absence"
    r"|absente?|en conges|conges|vacances|abwesenheit|abwesend|nicht im buro"
    r"|urlaub|im urlaub|auto|vacation|on vacation|on leave|away"
)
_STRONG_SUBJECT: Final = re.compile(rf"^(?:\[(?:{_STRONG})\]|(?:{_STRONG})\s*(?::|$))")
_WEAK_SUBJECT: Final = re.compile(rf"^(?:\[(?:{_WEAK})\]|(?:{_WEAK})\s*(?::|$))")
_REPLY_SUBJECT: Final = re.compile(r"^(?:re|aw|antw|sv|vs|r|rif|ref)\s*:")
_ABSENCE: Final = re.compile(
    r"|".join(
        (
            # English: present or future, first person.
            r"\bi(?: am|'m| will be|'ll be| shall be)(?: currently| now| presently)?"
            r" (?:out of (?:the )?office|away from (?:the|my) (?:office|desk|e-?mail)"
            r"|on (?:annual |parental |sick |maternity |paternity )?"
            r"(?:leave|vacation|holidays?)|away\b|travell?ing|out of town)",
            # French.
            r"\bje (?:suis|serai)(?: actuellement| en ce moment| aujourd'hui)?"
            r" (?:absente?|en conges?|en vacances|hors du bureau|en deplacement"
            r"|indisponible)\b",
            r"\bje n'ai pas acces a (?:mes|ma|mon) (?:e-?mails?|mails?|courriels?"
            r"|messagerie|boite)",
            # German: "Ich bin bis zum 7. Dezember nicht im Büro".
            r"\bich bin (?:[\w.,]+ ){0,6}?(?:nicht im buro|nicht im buero|abwesend"
            r"|im urlaub|nicht erreichbar|ausser haus|auf dienstreise)\b",
        )
    )
)
_SELF_DECLARED: Final = re.compile(
    r"|".join(
        (
            r"\b(?:this is an?|an?) (?:automatic|automated|auto-generated)"
            r" (?:reply|response|message|answer)\b",
            r"\b(?:ceci est|il s'agit d') ?une? (?:message|reponse) automatique\b",
            r"\b(?:dies ist eine|diese) automatische (?:antwort|nachricht|e-?mail)\b",
        )
    )
)
_BACK: Final = re.compile(
    r"\b(?:until|till|back (?:on|in|at)|return|returning|limited access|no access"
    r"|jusqu'(?:au|a|le)|retour|reviendrai|acces limite|pas acces"
    r"|bis|zuruck|wieder|ab dem)\b"
)
_FIRST_LINES: Final = 6
_FIRST_LINES_WITH_SUBJECT: Final = 12
_SHORT_CHARS: Final = 1500
_SHORT_LINES: Final = 25


def autoreply_sign(subject: str, text: str, *, is_reply: bool) -> str | None:
    """Say why a mail is an out-of-office reply from its words, or None."""
    title = fold(subject)
    if _STRONG_SUBJECT.match(title):
        return "auto-reply subject"
    is_weak = _WEAK_SUBJECT.match(title) is not None
    is_answer = is_reply or _REPLY_SUBJECT.match(title) is not None
    if not is_weak and not is_answer:
        return None  # spares new_text() on every new mail
    lines = [fold(line) for line in new_text(text).splitlines() if line.strip()]
    first = "\n".join(lines[:_FIRST_LINES_WITH_SUBJECT])
    if is_weak and (_ABSENCE.search(first) or _SELF_DECLARED.search(first)):
        return "out-of-office subject and text"
    body = "\n".join(lines)
    if (
        is_answer
        and len(lines) <= _SHORT_LINES
        and len(body) <= _SHORT_CHARS
        and "?" not in body
        and _is_out_of_office("\n".join(lines[:_FIRST_LINES]), body)
    ):
        return "out-of-office text"
    return None


def fold(text: str) -> str:
    """Lower-case, accents and typographic quotes removed, spaces made plain."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def _is_out_of_office(first_lines: str, body: str) -> bool:
    """An automatic answer by its own words, or an absence with a way back."""
    if _SELF_DECLARED.search(first_lines):
        return True
    return _ABSENCE.search(first_lines) is not None and _BACK.search(body) is not None
