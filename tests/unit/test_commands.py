"""core/commands.py: keywords of a reply's new text (SPEC "Replies and keywords")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maild.core.commands import (
    KEYWORDS,
    Command,
    CommandKind,
    LineProblem,
    ParsedReply,
    RefusedLine,
    SubjectCommand,
    parse_commands,
    parse_subject_command,
)
from maild.domain import EventKind

K = CommandKind


def _kinds(parsed: ParsedReply) -> list[CommandKind]:
    return [command.kind for command in parsed.commands]


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        ("CLAIM", K.CLAIM),
        ("PRENDRE", K.CLAIM),
        ("claim", K.CLAIM),
        ("Prendre", K.CLAIM),
        ("RELEASE", K.RELEASE),
        ("LIBERER", K.RELEASE),
        ("LIBÉRER", K.RELEASE),
        ("libérer", K.RELEASE),
        ("ACCEPT", K.ACCEPT),
        ("ACCEPTER", K.ACCEPT),
        ("Accepter", K.ACCEPT),
        ("ACCEPT.", K.ACCEPT),
        ("ACCEPTER !", K.ACCEPT),
    ],
)
def test_bare_keyword_alone(word: str, kind: CommandKind) -> None:
    assert parse_commands(word) == ParsedReply((Command(kind, line_no=1),), "", ())


@pytest.mark.parametrize(
    ("line", "kind", "text"),
    [
        ("CALL user reached, will reboot", K.CALL, "user reached, will reboot"),
        ("APPEL joint", K.CALL, "joint"),
        ("PDR messagerie pleine", K.PDR, "messagerie pleine"),
        ("pdr", K.PDR, ""),
        ("TASK Reinstalled driver", K.TASK, "Reinstalled driver"),
        ("TACHE pilote réinstallé", K.TASK, "pilote réinstallé"),
        ("TÂCHE pilote réinstallé", K.TASK, "pilote réinstallé"),
        ("RESOLVED Toner replaced", K.RESOLVED, "Toner replaced"),
        ("RESOLU Imprimante remplacée", K.RESOLVED, "Imprimante remplacée"),
        ("RÉSOLU : Imprimante remplacée", K.RESOLVED, "Imprimante remplacée"),
        ("résolu: fait", K.RESOLVED, "fait"),
        ("TERMINER fait", K.RESOLVED, "fait"),
        ("RESOLVED", K.RESOLVED, ""),
        ("REFUSE still broken", K.REFUSE, "still broken"),
        ("REFUSER toujours en panne", K.REFUSE, "toujours en panne"),
        ("REFUSE", K.REFUSE, ""),
        ("CANCEL no longer needed", K.CANCEL, "no longer needed"),
        ("ANNULER", K.CANCEL, ""),
        ("NOTE user on leave", K.NOTE, "user on leave"),
        ("Note that the server is slow", K.NOTE, "that the server is slow"),
        ("CALL\t joined ", K.CALL, "joined"),
    ],
)
def test_text_keyword_takes_the_rest_of_its_line(
    line: str, kind: CommandKind, text: str
) -> None:
    parsed = parse_commands(line)
    assert parsed == ParsedReply((Command(kind, text=text, line_no=1),), "", ())


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        ("RESOLVED\nPrinter replaced.", K.RESOLVED, "Printer replaced."),
        ("RESOLU\nImprimante remplacée.", K.RESOLVED, "Imprimante remplacée."),
        ("REFUSE\n\nStill broken.\n\nBob", K.REFUSE, "Still broken.\n\nBob"),
        ("TASK\nReinstalled", K.TASK, "Reinstalled"),
        ("NOTE\nUser on leave", K.NOTE, "User on leave"),
        ("PDR\nMessagerie pleine", K.PDR, "Messagerie pleine"),
        ("CALL\nWill reboot tonight", K.CALL, "Will reboot tonight"),
        ("ANNULER\nLe problème a disparu", K.CANCEL, "Le problème a disparu"),
    ],
)
def test_text_keyword_alone_takes_the_comment(
    reply: str, kind: CommandKind, text: str
) -> None:
    parsed = parse_commands(reply)
    assert parsed.commands == (Command(kind, text=text, line_no=1),)
    assert parsed.comment == ""
    assert parsed.refused == ()


@pytest.mark.parametrize(
    ("reply", "commands", "comment"),
    [
        (
            "CLAIM\nRESOLVED\nPrinter replaced.",
            (
                Command(K.CLAIM, line_no=1),
                Command(K.RESOLVED, "Printer replaced.", line_no=2),
            ),
            "",
        ),
        (
            "\n\n  prendre  \n\n  pdr \n  messagerie\n",
            (Command(K.CLAIM, line_no=3), Command(K.PDR, "messagerie", line_no=5)),
            "",
        ),
        (
            "CLAIM\nHello, I am on my way.",
            (Command(K.CLAIM, line_no=1),),
            "Hello, I am on my way.",
        ),
        (
            "RESOLVED Toner replaced\nThanks for your patience.",
            (Command(K.RESOLVED, "Toner replaced", line_no=1),),
            "Thanks for your patience.",
        ),
        (
            "RESOLVED\nCLAIM\nHi",
            (Command(K.RESOLVED, line_no=1), Command(K.CLAIM, line_no=2)),
            "Hi",
        ),
        (
            "ACCEPT\nRATE 5\nVery quick, thanks!",
            (
                Command(K.ACCEPT, line_no=1),
                Command(K.RATE, "Very quick, thanks!", 5, line_no=2),
            ),
            "",
        ),
        ("Hello\nCLAIM", (), "Hello\nCLAIM"),
        ("", (), ""),
        ("   \n\n", (), ""),
        ("Merci beaucoup !\n\nPaul", (), "Merci beaucoup !\n\nPaul"),
        (
            "ACCEPT\r\nRATE 4\r\n",
            (Command(K.ACCEPT, line_no=1), Command(K.RATE, score=4, line_no=2)),
            "",
        ),
    ],
    ids=[
        "claim-then-resolved",
        "blank-lines-skipped",
        "comment-after-bare",
        "comment-after-text-on-line",
        "only-last-takes-comment",
        "rate-takes-comment",
        "commands-only-at-top",
        "empty",
        "blank",
        "no-keyword",
        "crlf",
    ],
)
def test_commands_then_comment(
    reply: str, commands: tuple[Command, ...], comment: str
) -> None:
    parsed = parse_commands(reply)
    assert parsed.commands == commands
    assert parsed.comment == comment
    assert parsed.refused == ()


@pytest.mark.parametrize(
    ("line", "score", "text"),
    [
        ("RATE 5", 5, ""),
        ("RATE 1 slow", 1, "slow"),
        ("NOTER 4/5 super", 4, "super"),
        ("noter 3", 3, ""),
        ("RATE: 2 meh", 2, "meh"),
        ("NOTER 5 !", 5, "!"),
        ("RATE 5.", 5, ""),
        ("Noter 4, rapide", 4, "rapide"),
    ],
)
def test_rate(line: str, score: int, text: str) -> None:
    assert parse_commands(line).commands == (
        Command(K.RATE, text=text, score=score, line_no=1),
    )


@pytest.mark.parametrize(
    ("line", "address"),
    [
        ("ASSIGN bob@example.com", "bob@example.com"),
        ("AFFECTER Bob Martin <Bob.Martin@Example.com>", "bob.martin@example.com"),
        ("assign <alice@example.com>", "alice@example.com"),
    ],
)
def test_assign(line: str, address: str) -> None:
    assert parse_commands(line).commands == (
        Command(K.ASSIGN, address=address, line_no=1),
    )


@pytest.mark.parametrize(
    ("reply", "problem", "keyword", "suggestion"),
    [
        ("RESOLVE", LineProblem.NEAR_KEYWORD, K.RESOLVED, "RESOLVED"),
        ("CLAM", LineProblem.NEAR_KEYWORD, K.CLAIM, "CLAIM"),
        ("ACEPT", LineProblem.NEAR_KEYWORD, K.ACCEPT, "ACCEPT"),
        ("RESOLUE", LineProblem.NEAR_KEYWORD, K.RESOLVED, "RESOLU"),
        ("Resolve", LineProblem.NEAR_KEYWORD, K.RESOLVED, "RESOLVED"),
        ("RESOLVE the ticket", LineProblem.NEAR_KEYWORD, K.RESOLVED, "RESOLVED"),
        ("Terminé", LineProblem.NEAR_KEYWORD, K.RESOLVED, "TERMINER"),
        ("Accepted", LineProblem.NEAR_KEYWORD, K.ACCEPT, "ACCEPTER"),
        ("ANNULE", LineProblem.NEAR_KEYWORD, K.CANCEL, "ANNULER"),
        ("RATE", LineProblem.MISSING_SCORE, K.RATE, ""),
        ("rate", LineProblem.MISSING_SCORE, K.RATE, ""),
        ("RATE 9", LineProblem.BAD_SCORE, K.RATE, ""),
        ("RATE 0", LineProblem.BAD_SCORE, K.RATE, ""),
        ("rate 4.5", LineProblem.BAD_SCORE, K.RATE, ""),
        ("RATE abc", LineProblem.BAD_SCORE, K.RATE, ""),
        ("ASSIGN", LineProblem.MISSING_ADDRESS, K.ASSIGN, ""),
        ("ASSIGN bob", LineProblem.BAD_ADDRESS, K.ASSIGN, ""),
        ("assign bob@", LineProblem.BAD_ADDRESS, K.ASSIGN, ""),
        ("TASK", LineProblem.MISSING_TEXT, K.TASK, ""),
        ("NOTE", LineProblem.MISSING_TEXT, K.NOTE, ""),
        ("ACCEPT THANKS", LineProblem.UNEXPECTED_TEXT, K.ACCEPT, ""),
        ("CLAIM mine", LineProblem.UNEXPECTED_TEXT, K.CLAIM, ""),
    ],
)
def test_refused_line(
    reply: str, problem: LineProblem, keyword: CommandKind, suggestion: str
) -> None:
    parsed = parse_commands(reply)
    assert parsed.commands == ()
    assert parsed.comment == ""
    (refused,) = parsed.refused
    assert (refused.line, refused.problem, refused.keyword) == (reply, problem, keyword)
    assert refused.suggestion == suggestion
    assert refused.line_no == 1


@pytest.mark.parametrize(
    ("refused", "reason"),
    [
        (
            RefusedLine("RESOLVE", LineProblem.NEAR_KEYWORD, K.RESOLVED, "RESOLVED"),
            "did you mean RESOLVED?",
        ),
        (
            RefusedLine("RATE", LineProblem.MISSING_SCORE, K.RATE),
            "RATE needs a score from 1 to 5",
        ),
        (
            RefusedLine("RATE 9", LineProblem.BAD_SCORE, K.RATE),
            "the score must be a whole number from 1 to 5",
        ),
        (
            RefusedLine("ASSIGN", LineProblem.MISSING_ADDRESS, K.ASSIGN),
            "ASSIGN needs the technician's mail address",
        ),
        (
            RefusedLine("ASSIGN x", LineProblem.BAD_ADDRESS, K.ASSIGN),
            "ASSIGN needs one valid mail address",
        ),
        (RefusedLine("TASK", LineProblem.MISSING_TEXT, K.TASK), "TASK needs a text"),
        (
            RefusedLine("ACCEPT x", LineProblem.UNEXPECTED_TEXT, K.ACCEPT),
            "ACCEPT takes no text: write it on the next line",
        ),
    ],
)
def test_refusal_reason(refused: RefusedLine, reason: str) -> None:
    assert refused.reason == reason


def test_near_miss_alone_takes_the_comment_it_would_have_had() -> None:
    parsed = parse_commands("RESOLVE\nPrinter replaced.")
    assert parsed.comment == ""
    assert parsed.refused[0].text == "Printer replaced."


def test_near_miss_of_bare_keyword_leaves_the_comment() -> None:
    parsed = parse_commands("CLAM\nHello")
    assert parsed.comment == "Hello"
    assert parsed.refused[0].suggestion == "CLAIM"


def test_refused_line_does_not_end_the_commands() -> None:
    parsed = parse_commands("RATE 9\nACCEPT\nThanks")
    assert _kinds(parsed) == [K.ACCEPT]
    assert [r.problem for r in parsed.refused] == [LineProblem.BAD_SCORE]
    assert parsed.comment == "Thanks"


def test_bad_rate_alone_takes_the_comment() -> None:
    parsed = parse_commands("RATE 9\nGreat service")
    assert parsed.comment == ""
    assert parsed.refused[0].text == "Great service"


def test_note_without_text_before_another_command_is_refused() -> None:
    parsed = parse_commands("NOTE\nCLAIM")
    assert _kinds(parsed) == [K.CLAIM]
    assert parsed.refused == (
        RefusedLine("NOTE", LineProblem.MISSING_TEXT, K.NOTE, line_no=1),
    )


@pytest.mark.parametrize(
    "prose",
    [
        "Hello",
        "Bonjour,",
        "Merci",
        "Thanks!",
        "Great!",
        "Please",
        "Noted.",
        "Date: tomorrow",
        "Noté, merci",
        "Accept my apologies for the delay",
        "Release notes are attached",
        "Claim your badge at the desk",
        "Rate this ticket",
        "Noter que le serveur redémarre",
        "Assign this to someone please",
        "PDR2",
        "Call-back needed",
        "Resolved-ish",
        "Resolving it now",
        "Except on Mondays",
        "42 is the answer",
        "> quoted",
        "Aujourd'hui",
        "x" * 40,
    ],
)
def test_prose_is_a_comment(prose: str) -> None:
    assert parse_commands(prose) == ParsedReply((), prose, ())


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        (K.CLAIM, EventKind.CLAIMED),
        (K.RELEASE, EventKind.RELEASED),
        (K.ASSIGN, EventKind.ASSIGNED),
        (K.ACCEPT, EventKind.ACCEPTED),
        (K.REFUSE, EventKind.REFUSED),
        (K.RATE, EventKind.RATED),
        (K.CANCEL, EventKind.CANCELLED),
        (K.RESOLVED, EventKind.RESOLVED),
        (K.CALL, EventKind.CALL),
        (K.PDR, EventKind.PDR),
        (K.TASK, EventKind.TASK),
        (K.NOTE, EventKind.NOTE),
    ],
)
def test_command_event(kind: CommandKind, event: EventKind) -> None:
    assert kind.event is event


def test_every_kind_has_english_and_french_keywords() -> None:
    assert set(KEYWORDS.values()) == set(CommandKind)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("HELP", SubjectCommand.HELP),
        ("help", SubjectCommand.HELP),
        ("  Aide ", SubjectCommand.HELP),
        ("AIDE", SubjectCommand.HELP),
        ("LIST", SubjectCommand.LIST),
        ("liste", SubjectCommand.LIST),
        ("\tListe\n", SubjectCommand.LIST),
        ("Re: HELP", None),
        ("RE: LISTE", None),
        ("Fwd: LIST", None),
        ("help me", None),
        ("HELP!", None),
        ("", None),
        ("Imprimante en panne", None),
    ],
)
def test_subject_command(subject: str, expected: SubjectCommand | None) -> None:
    assert parse_subject_command(subject) is expected


# --- properties -----------------------------------------------------------

_NOT_KEYWORDS = [
    "bonjour",
    "hello",
    "printer",
    "imprimante",
    "merci",
    "the",
    "broken",
    "since",
    "yesterday",
    "écran",
    "reboot",
    "42",
    "ok",
    ",",
]
_prose_line = st.lists(st.sampled_from(_NOT_KEYWORDS), min_size=1, max_size=6).map(
    " ".join
)


@given(st.text())
def test_parser_never_raises(text: str) -> None:
    parsed = parse_commands(text)
    assert isinstance(parsed, ParsedReply)


@given(st.lists(_prose_line, max_size=8).map("\n".join))
def test_text_without_keyword_yields_no_command(text: str) -> None:
    parsed = parse_commands(text)
    assert parsed.commands == ()
    assert parsed.refused == ()
    assert parsed.comment == text.strip()


@given(_prose_line, st.text())
def test_commands_only_from_leading_lines(first: str, rest: str) -> None:
    parsed = parse_commands(f"{first}\n{rest}")
    assert parsed.commands == ()
    assert parsed.refused == ()


@given(
    st.lists(
        st.sampled_from(
            ["CLAIM", "prendre", "ACCEPT", "RATE 4", "PDR", "ASSIGN a@example.com"]
        ),
        min_size=1,
        max_size=5,
    ),
    _prose_line,
)
def test_commands_are_applied_in_order(lines: list[str], comment: str) -> None:
    parsed = parse_commands("\n".join([*lines, "", comment]))
    assert [c.line_no for c in parsed.commands] == list(range(1, len(lines) + 1))
    assert len(parsed.commands) == len(lines)
