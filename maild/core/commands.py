"""Step: a reply's new text -> its commands and its comment. No I/O.

Rules (SPEC "Replies and keywords"), and the choices made where SPEC is silent:

- Keywords are read from the leading lines, blank lines skipped, one command
  per line, case and accents ignored; the first other line ends the commands
  and it and everything after it is the comment.
- A keyword is a whole word at the start of its line, followed by nothing, by
  spaces and its argument, or by ":" and its argument ("RESOLU : fait").
  A keyword glued to other characters ("PDR2", "Noté, merci") is prose.
- Keywords without an argument (CLAIM, RELEASE, ACCEPT) must be alone on their
  line ("ACCEPT." and "ACCEPT !" count). Followed by text ("Accept my
  apologies", "Release notes attached") the line is prose, so a sentence can
  never close or release a ticket by accident.
- Text keywords (CALL, PDR, TASK, RESOLVED, REFUSE, CANCEL, NOTE) take the rest
  of their line as their text. When the last command has no text on its line
  it takes the comment that follows as its text, and there is then no
  separate comment: "PDR\\nMessagerie pleine" keeps the text internal, as a
  PDR's text is. RATE takes the comment likewise ("RATE 5\\nTrès rapide").
- TASK and NOTE need a text (an empty one logs nothing): without one the line
  is refused. CALL, PDR, RESOLVED, REFUSE and CANCEL work without a text.
- "NOTE that …" is the NOTE command: SPEC ignores case, so "Note" and "Noté"
  are NOTE. Whether a non-staff sender's refused NOTE/CALL/TASK/PDR becomes a
  comment is the caller's choice.
- `RATE n [comment]`: n is an integer 1-5, "n/5" is accepted. `ASSIGN address`
  needs one mail address ("Name <addr>" accepted).
- An attempt at a command that does not fit (a near-miss keyword, "RATE 9",
  "ASSIGN" without an address, "ACCEPT thanks") is a refused line, not a
  comment, when the word is written in capitals, stands alone on its line, or
  its argument looks like one (a digit after RATE, an "@" after ASSIGN).
  Otherwise the line is prose ("Noter que le serveur…", "Rate this ticket").
- A near-miss is a word of 4 letters or more at edit distance 1 from a keyword
  (2 for words of 6 letters or more), minus a few everyday words ("Great",
  "Please", "Noted", "Date"…). A near-miss of a text keyword alone on its line
  takes the comment, as the keyword would have: nothing of a mistyped command
  mail is forwarded.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from email.utils import parseaddr
from enum import StrEnum
from typing import Final

from maild.domain import EventKind

log = logging.getLogger(__name__)


class CommandKind(StrEnum):
    CLAIM = "claim"
    CALL = "call"
    PDR = "pdr"
    TASK = "task"
    RESOLVED = "resolved"
    RELEASE = "release"
    ASSIGN = "assign"
    ACCEPT = "accept"
    REFUSE = "refuse"
    RATE = "rate"
    CANCEL = "cancel"
    NOTE = "note"

    @property
    def event(self) -> EventKind:
        """The event this command records on the ticket."""
        return _EVENTS[self]


_EVENTS: Final[dict[CommandKind, EventKind]] = {
    CommandKind.CLAIM: EventKind.CLAIMED,
    CommandKind.CALL: EventKind.CALL,
    CommandKind.PDR: EventKind.PDR,
    CommandKind.TASK: EventKind.TASK,
    CommandKind.RESOLVED: EventKind.RESOLVED,
    CommandKind.RELEASE: EventKind.RELEASED,
    CommandKind.ASSIGN: EventKind.ASSIGNED,
    CommandKind.ACCEPT: EventKind.ACCEPTED,
    CommandKind.REFUSE: EventKind.REFUSED,
    CommandKind.RATE: EventKind.RATED,
    CommandKind.CANCEL: EventKind.CANCELLED,
    CommandKind.NOTE: EventKind.NOTE,
}

# Upper-case, accents removed; English first, then French.
KEYWORDS: Final[dict[str, CommandKind]] = {
    "CLAIM": CommandKind.CLAIM,
    "PRENDRE": CommandKind.CLAIM,
    "CALL": CommandKind.CALL,
    "APPEL": CommandKind.CALL,
    "PDR": CommandKind.PDR,
    "TASK": CommandKind.TASK,
    "TACHE": CommandKind.TASK,
    "RESOLVED": CommandKind.RESOLVED,
    "RESOLU": CommandKind.RESOLVED,
    "TERMINER": CommandKind.RESOLVED,
    "RELEASE": CommandKind.RELEASE,
    "LIBERER": CommandKind.RELEASE,
    "ASSIGN": CommandKind.ASSIGN,
    "AFFECTER": CommandKind.ASSIGN,
    "ACCEPT": CommandKind.ACCEPT,
    "ACCEPTER": CommandKind.ACCEPT,
    "REFUSE": CommandKind.REFUSE,
    "REFUSER": CommandKind.REFUSE,
    "RATE": CommandKind.RATE,
    "NOTER": CommandKind.RATE,
    "CANCEL": CommandKind.CANCEL,
    "ANNULER": CommandKind.CANCEL,
    "NOTE": CommandKind.NOTE,
}

_BARE: Final = frozenset({CommandKind.CLAIM, CommandKind.RELEASE, CommandKind.ACCEPT})
_NEEDS_TEXT: Final = frozenset({CommandKind.TASK, CommandKind.NOTE})
# Commands that take the comment after them when their line has no text.
_TAKES_COMMENT: Final = frozenset(
    {
        CommandKind.CALL,
        CommandKind.PDR,
        CommandKind.TASK,
        CommandKind.RESOLVED,
        CommandKind.REFUSE,
        CommandKind.RATE,
        CommandKind.CANCEL,
        CommandKind.NOTE,
    }
)
# Everyday words one or two letters away from a keyword.
_EVERYDAY: Final = frozenset(
    {"DATE", "LATE", "GATE", "GREAT", "PLEASE", "EXCEPT", "NOTED", "NOTES", "NOTA"}
)
MIN_SCORE: Final = 1
MAX_SCORE: Final = 5
_NEAR_MIN_LENGTH: Final = 4
_NEAR_LONG_WORD: Final = 6  # from here, two edits still make a near-miss
_NEAR_MAX_LENGTH: Final = 30
_WORD: Final = re.compile(r"([^\W\d_]+)(.*)", re.DOTALL)
_SCORE: Final = re.compile(r"(\d+)(?:/5)?")
_ADDRESS: Final = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


class LineProblem(StrEnum):
    NEAR_KEYWORD = "near_keyword"  # "RESOLVE": did you mean RESOLVED?
    MISSING_SCORE = "missing_score"  # "RATE"
    BAD_SCORE = "bad_score"  # "RATE 9", "RATE abc"
    MISSING_ADDRESS = "missing_address"  # "ASSIGN"
    BAD_ADDRESS = "bad_address"  # "ASSIGN bob@"
    MISSING_TEXT = "missing_text"  # "TASK" with nothing to log
    UNEXPECTED_TEXT = "unexpected_text"  # "ACCEPT THANKS"


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a reply, in the order written."""

    kind: CommandKind
    text: str = ""  # CALL, PDR, TASK, RESOLVED, REFUSE, CANCEL, NOTE; RATE comment
    score: int | None = None  # RATE only, 1-5
    address: str = ""  # ASSIGN only, lower-cased
    line_no: int = 0  # 1-based line of the new text, to order the transcript


@dataclass(frozen=True, slots=True)
class RefusedLine:
    """A leading line that tried to be a command and is not a valid one."""

    line: str  # as written, stripped
    problem: LineProblem
    keyword: CommandKind | None = None  # the command it looks like
    suggestion: str = ""  # NEAR_KEYWORD: the keyword as spelt in KEYWORDS
    text: str = ""  # its text, or the comment it took
    line_no: int = 0

    @property
    def reason(self) -> str:
        """Say in English why the line was refused (templates use `problem`)."""
        return _REASONS[self.problem].format(
            suggestion=self.suggestion,
            keyword=(self.keyword or "").upper(),
            low=MIN_SCORE,
            high=MAX_SCORE,
        )


_REASONS: Final[dict[LineProblem, str]] = {
    LineProblem.NEAR_KEYWORD: "did you mean {suggestion}?",
    LineProblem.MISSING_SCORE: "{keyword} needs a score from {low} to {high}",
    LineProblem.BAD_SCORE: "the score must be a whole number from {low} to {high}",
    LineProblem.MISSING_ADDRESS: "{keyword} needs the technician's mail address",
    LineProblem.BAD_ADDRESS: "{keyword} needs one valid mail address",
    LineProblem.MISSING_TEXT: "{keyword} needs a text",
    LineProblem.UNEXPECTED_TEXT: "{keyword} takes no text: write it on the next line",
}


@dataclass(frozen=True, slots=True)
class ParsedReply:
    commands: tuple[Command, ...]
    comment: str  # "" when there is none, or when the last command took it
    refused: tuple[RefusedLine, ...]


class SubjectCommand(StrEnum):
    HELP = "help"
    LIST = "list"


_SUBJECT_COMMANDS: Final[dict[str, SubjectCommand]] = {
    "HELP": SubjectCommand.HELP,
    "AIDE": SubjectCommand.HELP,
    "LIST": SubjectCommand.LIST,
    "LISTE": SubjectCommand.LIST,
}


def parse_subject_command(subject: str) -> SubjectCommand | None:
    """Return the command a new mail's subject is, if it is exactly one word of it."""
    return _SUBJECT_COMMANDS.get(_fold(subject.strip()))


def parse_commands(new_text: str) -> ParsedReply:
    """Split a reply's new text into its leading commands and its comment."""
    lines = new_text.splitlines()
    entries: list[Command | RefusedLine] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped:
            entry = _read_line(stripped, index + 1)
            if entry is None:
                break
            entries.append(entry)
        index += 1
    comment = "\n".join(lines[index:]).strip()
    if entries and comment and _takes_comment(entries[-1]):
        entries[-1] = replace(entries[-1], text=comment)
        comment = ""
    checked = [_check_text(entry, lines) for entry in entries]
    return ParsedReply(
        commands=tuple(e for e in checked if isinstance(e, Command)),
        comment=comment,
        refused=tuple(e for e in checked if isinstance(e, RefusedLine)),
    )


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def _takes_comment(entry: Command | RefusedLine) -> bool:
    kind = entry.kind if isinstance(entry, Command) else entry.keyword
    return kind in _TAKES_COMMENT and not entry.text


def _check_text(
    entry: Command | RefusedLine, lines: list[str]
) -> Command | RefusedLine:
    if isinstance(entry, Command) and entry.kind in _NEEDS_TEXT and not entry.text:
        return RefusedLine(
            line=lines[entry.line_no - 1].strip(),
            problem=LineProblem.MISSING_TEXT,
            keyword=entry.kind,
            line_no=entry.line_no,
        )
    return entry


@dataclass(frozen=True, slots=True)
class _Line:
    """A non-blank leading line cut into its first word and its argument."""

    text: str  # the whole line, stripped
    word: str  # the first word as written
    key: str  # the first word folded: upper-case, no accents
    argument: str  # what follows the word (and its ":"), stripped
    line_no: int

    @property
    def is_alone(self) -> bool:
        return not self.argument

    @property
    def is_shouted(self) -> bool:
        return self.word.isupper()


def _split(stripped: str, line_no: int) -> _Line | None:
    match = _WORD.match(stripped)
    if match is None:
        return None
    word, rest = match.group(1), match.group(2)
    if rest.rstrip(".! ") == "":
        argument = ""  # "ACCEPT." and "ACCEPT !" stand alone
    elif rest[0].isspace() or rest[0] == ":":
        argument = rest.strip().removeprefix(":").strip()
    else:
        return None  # glued to the word: "PDR2", "Noté, merci", "e-mail"
    return _Line(stripped, word, _fold(word), argument, line_no)


def _read_line(stripped: str, line_no: int) -> Command | RefusedLine | None:
    """Read one leading line: a command, a refused attempt, or None for prose."""
    line = _split(stripped, line_no)
    if line is None:
        return None
    kind = KEYWORDS.get(line.key)
    if kind is None:
        return _near_miss(line)
    if kind in _BARE:
        return _bare(kind, line)
    if kind is CommandKind.RATE:
        return _rate(line)
    if kind is CommandKind.ASSIGN:
        return _assign(line)
    return Command(kind, text=line.argument, line_no=line_no)


def _refused(
    line: _Line, problem: LineProblem, kind: CommandKind, suggestion: str = ""
) -> RefusedLine:
    return RefusedLine(
        line=line.text,
        problem=problem,
        keyword=kind,
        suggestion=suggestion,
        text=line.argument if problem is LineProblem.NEAR_KEYWORD else "",
        line_no=line.line_no,
    )


def _bare(kind: CommandKind, line: _Line) -> Command | RefusedLine | None:
    if line.is_alone:
        return Command(kind, line_no=line.line_no)
    if line.is_shouted:
        return _refused(line, LineProblem.UNEXPECTED_TEXT, kind)
    return None


def _rate(line: _Line) -> Command | RefusedLine | None:
    kind = CommandKind.RATE
    if line.is_alone:
        return _refused(line, LineProblem.MISSING_SCORE, kind)
    first, _, rest = line.argument.partition(" ")
    match = _SCORE.fullmatch(first.rstrip(".!,;"))
    if match is None or not MIN_SCORE <= int(match.group(1)) <= MAX_SCORE:
        if line.is_shouted or first[0].isdigit():
            return _refused(line, LineProblem.BAD_SCORE, kind)
        return None  # "Noter que le serveur…" is prose
    return Command(
        kind, text=rest.strip(), score=int(match.group(1)), line_no=line.line_no
    )


def _assign(line: _Line) -> Command | RefusedLine | None:
    kind = CommandKind.ASSIGN
    if line.is_alone:
        return _refused(line, LineProblem.MISSING_ADDRESS, kind)
    _, address = parseaddr(line.argument)
    if _ADDRESS.fullmatch(address) and address in line.argument:
        return Command(kind, address=address.lower(), line_no=line.line_no)
    if line.is_shouted or "@" in line.argument:
        return _refused(line, LineProblem.BAD_ADDRESS, kind)
    return None  # "Assign this to someone, please" is prose


def _near_miss(line: _Line) -> RefusedLine | None:
    key = line.key
    if not _NEAR_MIN_LENGTH <= len(key) <= _NEAR_MAX_LENGTH or key in _EVERYDAY:
        return None
    if not (line.is_shouted or line.is_alone):
        return None
    allowed = 1 if len(key) < _NEAR_LONG_WORD else 2
    distance, keyword = min(
        ((_distance(key, keyword), keyword) for keyword in KEYWORDS),
        key=lambda pair: pair[0],
    )
    if distance > allowed:
        return None
    log.debug("near-miss keyword %s for %s", key, keyword)
    return _refused(line, LineProblem.NEAR_KEYWORD, KEYWORDS[keyword], keyword)


def _distance(left: str, right: str) -> int:
    """Return the Levenshtein distance between two short words."""
    previous = list(range(len(right) + 1))
    for i, char in enumerate(left, start=1):
        current = [i]
        for j, other in enumerate(right, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (char != other),
                )
            )
        previous = current
    return previous[-1]
