"""Step: a reply's plain text -> only its new text (quote stripping). No I/O.

Wraps mail-parser-reply and adds what it misses. Only the new text of a reply
may carry keywords, so this errs on the side of keeping text: it cuts at the
first line that starts the quoted mail (an attribution such as "On … wrote:",
an Outlook separator or header block) and at a phone signature, and it drops
`>`-quoted lines. It never drops the first line of the new text.

Bottom-posted and inline replies work too: when the text *starts* with an
attribution followed by `>`-quoted lines, the attribution and the quoted lines
are dropped and the unquoted lines in between are the new text.
"""

# Cyrillic and CJK letters and full-width punctuation are what this matches.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Final

from mailparser_reply import EmailReplyParser

log = logging.getLogger(__name__)

# Every language mail-parser-reply knows, and the ones it does not that our
# users write in (Portuguese, Norwegian, Russian, Finnish): our rules cover all.
DEFAULT_LANGUAGES: Final = (
    "en", "fr", "de", "es", "it", "pt", "nl", "da", "no", "sv", "pl", "cs",
    "ru", "fi", "ja", "zh", "ko",
)  # fmt: skip
# The library is asked for these only: each language costs it a scan of the
# whole text, and our rules already cover what it knows of the others. Its
# Polish rule would even cut at a single "Data:" or "Do:" line of English text.
_LIBRARY_LANGUAGES: Final = frozenset({"en", "fr", "de", "es", "it"})

# Longer lines are never taken for a header: it keeps the regexes cheap.
_MAX_HEADER_CHARS: Final = 400
# An attribution may be wrapped by the sender's client over this many lines.
_MAX_HEADER_LINES: Final = 3
# The library's regexes scan the whole text: past this, our own cut stands.
_LIBRARY_MAX_CHARS: Final = 100_000
# How far below a From: line the Sent:/Date: line of its block may be.
_BLOCK_LOOKAHEAD: Final = 3


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """The words one language's mail clients write around a quoted mail."""

    attributions: tuple[re.Pattern[str], ...]  # whole (joined) attribution
    from_line: re.Pattern[str]  # first line of an Outlook header block
    sent_line: re.Pattern[str]  # a later line of that block
    signatures: re.Pattern[str]  # "Sent from my iPhone" and friends


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _header_line(words: str) -> re.Pattern[str]:
    # "From:", "*From:*", "De :" with a (non-breaking) space before the colon,
    # "差出人：" with a full-width one.
    return re.compile(rf"^[\s*]*(?:{words})[\s*]*[:\uff1a]", re.IGNORECASE)


def _signature(openings: str) -> re.Pattern[str]:
    # A client's tag is a few words and maybe a link, never a sentence with a
    # comma: "Sent from my desk, which is easier" is text.
    tag = r"[\w .'\u2019()-]{1,40}(?:<\S+>)?"
    return re.compile(rf"^(?:{openings}) {tag}$", re.IGNORECASE)


def _suffix_signature(closing: str) -> re.Pattern[str]:
    # "iPhoneから送信", "내 iPhone에서 보냄": the device comes first.
    return re.compile(rf"^[\w .'()-]{{1,40}}{closing}$", re.IGNORECASE)


# Without "my", a phone tag must name the device or app: "Sendt fra lageret"
# (sent from the warehouse) is text.
_DEVICE: Final = (
    r"(?:(?:i(?:Phone|Pad)|Android|Samsung|Galaxy|Huawei|Xiaomi|BlackBerry"
    r"|Outlook|Yahoo|Mail|Gmail|Почты|Яндекс|aplikacji|Poczty)\b|мобильн)"
)
# The table below is data, one entry a language: it is what makes this module
# longer than most, and it reads best next to the rules that use it.
# Every attribution carries a date, hence the digit: it keeps ordinary
# sentences such as "On the other hand … wrote:" out. "[^\d]*\d" rather than
# ".*\d" finds the first digit without backtracking.
# Danish, Norwegian and Swedish clients all write "… skrev …:".
_SKREV: Final = _compile(r"^[^\d]*\d.*\sskrev\s.+:$")
_VOCABULARIES: Final[dict[str, _Vocabulary]] = {
    "en": _Vocabulary(
        attributions=(
            _compile(r"^[-\s]*On\s[^\d]*\d.*[\s>]wrote\s*:?[-\s]*$"),
            _compile(r"^[^\d]*\d.*<\S+@\S+>\s*wrote\s*:$"),
        ),
        from_line=_header_line("From"),
        sent_line=_header_line("Sent|Date"),
        signatures=_signature(
            r"Sent from my|Sent from (?:Mail|Outlook|Yahoo Mail)|Get Outlook for"
        ),
    ),
    "fr": _Vocabulary(
        attributions=(_compile(r"^Le\s[^\d]*\d.*\sa\s+[ée]crit\s*:$"),),
        from_line=_header_line("De"),
        sent_line=_header_line("Envoy[ée](?: le)?|Date"),
        signatures=_signature(
            r"Envoy[ée] (?:de|depuis) (?:mon|ma)|Envoy[ée] à partir d[e']"
            r"|Obtenir Outlook pour|Télécharger Outlook pour"
        ),
    ),
    "de": _Vocabulary(
        attributions=(
            _compile(r"^Am\s[^\d]*\d.*\sschrieb\b.*:$"),
            _compile(r"^.+\sschrieb\s+am\s[^\d]*\d.*:$"),
        ),
        from_line=_header_line("Von"),
        sent_line=_header_line("Gesendet|Datum"),
        signatures=_signature(r"Gesendet von(?: meinem)?|Von meinem|Outlook für"),
    ),
    "es": _Vocabulary(
        attributions=(_compile(r"^El\s[^\d]*\d.*\sescribi[óo]\s*:$"),),
        from_line=_header_line("De"),
        sent_line=_header_line("Enviado|Fecha"),
        signatures=_signature(r"Enviado desde(?: mi)?|Obtener Outlook para"),
    ),
    "it": _Vocabulary(
        attributions=(_compile(r"^(?:Il|In\s+data)\s[^\d]*\d.*\sha\s+scritto\s*:$"),),
        from_line=_header_line("Da"),
        sent_line=_header_line("Inviato|Data"),
        signatures=_signature(r"Inviato da(?:l mio)?|Scarica Outlook per"),
    ),
    "pt": _Vocabulary(
        attributions=(_compile(r"^(?:Em|No dia)\s[^\d]*\d.*\sescreveu\s*:$"),),
        from_line=_header_line("De"),
        sent_line=_header_line("Enviad[ao](?: em)?|Data"),
        signatures=_signature(
            r"Enviado (?:do|a partir do) meu"
            rf"|Enviado (?:do|a partir d[oe])(?= {_DEVICE})"
            r"|Obter o Outlook para"
        ),
    ),
    "nl": _Vocabulary(
        attributions=(_compile(r"^Op\s[^\d]*\d.*\s(?:schreef|geschreven)\b.*:$"),),
        from_line=_header_line("Van"),
        sent_line=_header_line("Verzonden|Datum"),
        signatures=_signature(
            rf"Verzonden (?:vanaf|van|met) mijn|Verzonden (?:vanaf|met)(?= {_DEVICE})"
            r"|Outlook voor"
        ),
    ),
    "da": _Vocabulary(
        attributions=(_SKREV,),
        from_line=_header_line("Fra"),
        sent_line=_header_line("Sendt|Dato"),
        signatures=_signature(
            rf"Sendt fra min|Sendt fra(?= {_DEVICE})|Hent Outlook til"
        ),
    ),
    "no": _Vocabulary(
        attributions=(_SKREV,),
        from_line=_header_line("Fra"),
        sent_line=_header_line("Sendt|Dato"),
        signatures=_signature(rf"Sendt fra min|Sendt fra(?= {_DEVICE})|Få Outlook for"),
    ),
    "sv": _Vocabulary(
        attributions=(_SKREV,),
        from_line=_header_line("Från"),
        sent_line=_header_line("Skickat|Datum"),
        signatures=_signature(
            rf"Skickat från min|Skickat från(?= {_DEVICE})|Hämta Outlook för"
        ),
    ),
    "pl": _Vocabulary(
        attributions=(
            _compile(r"^[^\d]*\d.*\s(?:napisał(?:\(a\)|a)?|pisze|nadesłał)\s*:$"),
        ),
        from_line=_header_line("Od"),
        sent_line=_header_line("Wysłano|Data"),
        signatures=_signature(
            rf"Wysł(?:ane|ano) z mojego|Wysł(?:ane|ano) z(?= {_DEVICE})"
        ),
    ),
    "cs": _Vocabulary(
        attributions=(_compile(r"^Dne\s[^\d]*\d.*\snapsal(?:\(a\)|a)?\s*:$"),),
        from_line=_header_line("Od"),
        sent_line=_header_line("Odesláno|Datum"),
        signatures=_signature(rf"Odesláno z mého|Odesláno z(?= {_DEVICE})"),
    ),
    "ru": _Vocabulary(
        attributions=(
            _compile(r"^[^\d]*\d.*\s(?:написал[аи]?|пишет)\s*:$"),
            # Gmail writes no verb: "ср, 30 апр. 2025 г. в 15:19, Имя <a@b>:".
            _compile(r"^[^\d]*\d[^:]*\sг\.,?\s+в\s+\d{1,2}:\d{2},.*<\S+@\S+>\s*:$"),
        ),
        from_line=_header_line("От"),
        sent_line=_header_line("Отправлено|Дата"),
        signatures=_signature(
            rf"Отправлено (?:с|из) моего|Отправлено (?:с|из)(?= {_DEVICE})"
        ),
    ),
    "ja": _Vocabulary(
        attributions=(_compile(r"^\d{4}年\d{1,2}月\d{1,2}日.*[:\uff1a]$"),),
        from_line=_header_line("差出人"),
        sent_line=_header_line("送信日時|日付"),
        signatures=_suffix_signature("から送信"),
    ),
    "zh": _Vocabulary(
        attributions=(
            _compile(r"^[^\d]*\d{4}年\d{1,2}月\d{1,2}日.*[写寫]道[:\uff1a]$"),
        ),
        from_line=_header_line("发件人|寄件者"),
        sent_line=_header_line("发送时间|寄件日期|日期"),
        signatures=_compile(r"^(?:发自我的|从我的|從我的)[\w .'()-]{1,40}$"),
    ),
    "fi": _Vocabulary(
        attributions=(_compile(r"^[^\d]*\d.*\skirjoitti\s*:$"),),
        from_line=_header_line("Lähettäjä"),
        sent_line=_header_line("Lähetetty|Päivämäärä"),
        signatures=_compile(
            r"^Lähetetty (?:minun )?(?:iPhonesta|iPadista|Androidista)$"
        ),
    ),
    "ko": _Vocabulary(
        attributions=(_compile(r"^\d{4}년\s*\d{1,2}월\s*\d{1,2}일.*작성[^:]{0,10}:$"),),
        from_line=_header_line(r"보낸\s?사람"),
        sent_line=_header_line(r"보낸\s?날짜|날짜"),
        signatures=_suffix_signature("에서 보냄"),
    ),
}

_QUOTED: Final = re.compile(r"^\s*>")
# "---- On … wrote ----" (Zoho) or an attribution wrapped by the client: it
# opens with its word, a date ("15.11.2021 …", "pt., 28 sty …") or holds the
# verb before its wrap ("Bob schrieb am Fr., 28." / "Jan. 2016 um 10:15:").
_ATTRIBUTION_START: Final = _compile(
    r"^[-\s]*(?:On|Le|Am|El|Il|In\s+data|Em|No\s+dia|Op|Den|W\s+dniu|Dnia|Dne)\s"
    r"|^\w{0,4}\.?,?\s?\d"
)
_ATTRIBUTION_VERB: Final = _compile(
    r"\s(?:schrieb|skrev|escreveu|napisał|pisze|napsal|написал|пишет|schreef"
    r"|heeft|kirjoitti)\s"
)
_ORIGINAL_SEPARATOR: Final = _compile(
    r"^\s*[-_]{2,}\s*(?:Original Message|Message d['\u2019]origine"
    r"|Urspr(?:ü|ue)ngliche Nachricht|Mensaje original|Messaggio originale"
    r"|Forwarded message|Message transf[ée]r[ée]|Weitergeleitete Nachricht"
    r"|Mensaje reenviado|Messaggio inoltrato)\s*[-_]{2,}\s*$"
)
_SIGNATURE_DELIMITER: Final = re.compile(r"^--\s*$")
_BLANK_RUN: Final = re.compile(r"\n{3,}")  # left where quoted lines were
_RULE: Final = re.compile(r"^\s*(?:[-_=*]\s*){5,}$")


@lru_cache(maxsize=4)
def new_text(text: str, languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> str:
    """Return only the new text of a reply: no quote, no attribution, no phone tag.

    Classification (is it an out-of-office?) and the reply's commands both
    need it for the same mail: remembered for the last few texts.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    vocabularies = _vocabularies_for(languages)
    kept = _strip(lines, vocabularies)
    ours = _BLANK_RUN.sub("\n\n", "\n".join(line.rstrip() for line in kept))
    return _narrowed_by_library(ours, languages)


def _vocabularies_for(languages: tuple[str, ...]) -> tuple[_Vocabulary, ...]:
    # English is always on, as in mail-parser-reply: clients answer in English
    # whatever their user writes.
    wanted = ("en", *languages)
    return tuple(
        _VOCABULARIES[name]
        for name in dict.fromkeys(lang.lower() for lang in wanted)
        if name in _VOCABULARIES
    )


def _strip(lines: Sequence[str], vocabularies: tuple[_Vocabulary, ...]) -> list[str]:
    kept: list[str] = []
    has_text = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if _QUOTED.match(line):
            index += 1
            continue
        span = _attribution_span(lines, index, vocabularies)
        if span:
            if has_text or not _is_quote_next(lines, index + span):
                break
            index += span  # bottom-posted or inline reply: skip the attribution
            continue
        if _starts_original(lines, index, vocabularies) or _is_signature(
            line, vocabularies
        ):
            break
        if not _is_unknown_attribution(lines, index):
            kept.append(line)
            has_text = has_text or bool(line.strip())
        index += 1
    while kept and (not kept[-1].strip() or _RULE.match(kept[-1])):
        kept.pop()
    start = next((i for i, line in enumerate(kept) if line.strip()), len(kept))
    return kept[start:]


def _attribution_span(
    lines: Sequence[str], index: int, vocabularies: tuple[_Vocabulary, ...]
) -> int:
    """Return how many lines the attribution starting here takes, 0 if none."""
    first = lines[index].strip()
    if not first or len(first) > _MAX_HEADER_CHARS:
        return 0
    # Only a line that opens like an attribution may be joined with the next
    # ones: Gmail and Thunderbird wrap long attributions.
    if _ATTRIBUTION_START.match(first) or _ATTRIBUTION_VERB.search(first):
        limit = _MAX_HEADER_LINES
    elif first[-1] in ":-" or first.lower().endswith("wrote"):
        limit = 1
    else:
        return 0  # the common case, kept cheap: no attribution ends so
    joined = ""
    for count, line in enumerate(lines[index : index + limit], start=1):
        joined = f"{joined} {line.strip()}".strip()
        if len(joined) > _MAX_HEADER_CHARS:
            return 0
        if any(p.match(joined) for v in vocabularies for p in v.attributions):
            # "2 PCs are down." above "Den 28. jan. … skrev …:" joins into
            # an attribution too: the text line is kept when the next one
            # starts an attribution of its own.
            if count > 1 and _attribution_span(lines, index + 1, vocabularies):
                return 0
            return count
    return 0


def _is_unknown_attribution(lines: Sequence[str], index: int) -> bool:
    """Tell whether this is a dated line ending in ":" just above a quote.

    That is how clients in every language introduce a quote ("2013.02.08.
    7:31 keltezéssel, X írta:"); only the line goes, inline answers stay.
    """
    line = lines[index].strip()
    return (
        line.endswith(":")
        and len(line) <= _MAX_HEADER_CHARS
        and any(char.isdigit() for char in line)
        and _is_quote_next(lines, index + 1)
    )


def _is_quote_next(lines: Sequence[str], index: int) -> bool:
    for line in lines[index:]:
        if line.strip():
            return bool(_QUOTED.match(line))
    return False


def _starts_original(
    lines: Sequence[str], index: int, vocabularies: tuple[_Vocabulary, ...]
) -> bool:
    """Tell whether the original mail (Outlook style, unquoted) starts here."""
    line = lines[index]
    if _ORIGINAL_SEPARATOR.match(line):
        return True
    for vocabulary in vocabularies:
        if vocabulary.from_line.match(line):
            following = islice(
                (lines[i] for i in range(index + 1, len(lines)) if lines[i].strip()),
                _BLOCK_LOOKAHEAD,
            )
            if any(vocabulary.sent_line.match(later) for later in following):
                return True
    return False


def _is_signature(line: str, vocabularies: tuple[_Vocabulary, ...]) -> bool:
    stripped = line.strip()
    if _SIGNATURE_DELIMITER.match(stripped):
        return True
    return any(v.signatures.match(stripped) for v in vocabularies)


def _narrowed_by_library(ours: str, languages: tuple[str, ...]) -> str:
    """Let mail-parser-reply cut further, unless it would lose our first line."""
    if not ours or len(ours) > _LIBRARY_MAX_CHARS:
        return ours
    known = [lang for lang in languages if lang.lower() in _LIBRARY_LANGUAGES]
    parser = EmailReplyParser(languages=known)
    theirs: str | None = parser.parse_reply(text=ours)
    if not theirs or _first_line(theirs) != _first_line(ours):
        return ours
    kept = _lines_matching(ours, theirs)
    if kept != ours:
        log.debug("mail-parser-reply cut %d more characters", len(ours) - len(kept))
    return kept


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.split("\n") if line.strip()), "")


def _lines_matching(ours: str, theirs: str) -> str:
    """Return the lines of `ours` up to the last non-blank line of `theirs`.

    The library strips every line and may drop separator lines; keep our own
    lines (their indentation) and only take its cut.
    """
    last = _first_line("\n".join(reversed(theirs.split("\n"))))
    wanted = sum(1 for line in theirs.split("\n") if line.strip() == last)
    lines = ours.split("\n")
    seen = 0
    for position, line in enumerate(lines):
        if line.strip() == last:
            seen += 1
            if seen == wanted:
                return "\n".join(lines[: position + 1])
    # The library found its cut inside a line (it looks headers up with
    # str.find): keep ours rather than guess.
    return ours
