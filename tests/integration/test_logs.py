"""The daemon's log, as an operator reads it: the real daemon on the quick
start's configuration (SMTP intake, no relay: notifications kept as .eml), a
new mail and a reply. At the default level: one line per mail with its
outcome, ticket, sender and Message-ID, one line per notification sent, and
nothing of the libraries (Alembic, APScheduler, aiosmtpd, SQLAlchemy ...); in
JSON, every line an object with the same fields as keys."""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import start_daemon
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MARIE, ALICE = "marie@example.com", "alice@example.com"  # requester, technician
FIRST, SECOND = "logs-new@client.example.com", "logs-claim@client.example.com"
TEXT_LINE = re.compile(r"(?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<rest>.*)")
TEXT_FIELD = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "]+)')
JSON_KEYS = {"time", "level", "logger", "message"}
Line = dict[str, Any]


def mail(sender: str, subject: str, body: str, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def parse_text(line: str) -> Line:
    """A text line as a dict: level, logger, and its key=value fields."""
    found = TEXT_LINE.fullmatch(line)
    assert found is not None, f"not a log line: {line!r}"
    fields = {
        key: json.loads(value) if value.startswith('"') else value
        for key, value in TEXT_FIELD.findall(found["rest"])
    }
    return {
        **fields,
        "level": found["level"].lower(),
        "logger": found["logger"],
        "text": found["rest"],
    }


def parse_json(line: str) -> Line:
    parsed: Line = json.loads(line)
    assert set(parsed) >= JSON_KEYS, line
    parsed["text"] = parsed["message"]
    return parsed


def read_log(log: Path, parse: Any) -> list[Line]:
    """The complete lines written so far, parsed."""
    text = log.read_text(encoding="utf-8")
    return [parse(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def outcomes(lines: list[Line]) -> list[Line]:
    return [line for line in lines if "outcome" in line]


@pytest.mark.parametrize("form", ["text", "json"])
def test_one_line_per_mail_and_per_notification_and_none_from_libraries(
    tmp_path: Path, form: str
) -> None:
    parse = parse_json if form == "json" else parse_text
    extra = f'[log]\nformat = "{form}"\n' if form == "json" else ""  # text: default
    daemon = start_daemon(tmp_path, None, extra=extra)  # no relay: .eml files
    try:
        daemon.send(mail(MARIE, "Imprimante en panne", "Elle ne répond plus.", FIRST))
        (opened,) = wait_until(
            lambda: outcomes(read_log(daemon.log, parse)), 30, "the first outcome"
        )
        number = opened["ticket"]
        subject = f"Re: [HD {number}] Imprimante en panne"
        daemon.send(mail(ALICE, subject, "CLAIM\n\nJe passe.", SECOND), ALICE)
        wait_until(
            lambda: len(outcomes(read_log(daemon.log, parse))) == 2, 30, "the reply"
        )
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()  # the outbox is flushed
    lines = read_log(daemon.log, parse)
    # One line per mail, with what it came to.
    assert [
        (o["outcome"], o["ticket"], o["sender"], o["msgid"]) for o in outcomes(lines)
    ] == [("ticket", number, MARIE, FIRST), ("reply", number, ALICE, SECOND)]
    assert [o["level"] for o in outcomes(lines)] == ["info", "info"]
    # One line per notification sent: the mails kept in the outbox folder.
    kept = {
        message_from_bytes(path.read_bytes())["Message-ID"].strip("<>")
        for path in (tmp_path / "var" / "outbox").glob("*.eml")
    }
    sent = [line for line in lines if line["text"].startswith("notification sent")]
    assert sorted(line["msgid"] for line in sent) == sorted(kept)
    assert len(sent) >= 3  # confirmation, announcement, transcript, claimed
    assert {line["ticket"] for line in sent} == {number}
    assert all(line["to"] for line in sent)
    # Nothing from another library at INFO or DEBUG.
    chatty = [
        line
        for line in lines
        if line["level"] in ("info", "debug") and not line["logger"].startswith("maild")
    ]
    assert chatty == []
