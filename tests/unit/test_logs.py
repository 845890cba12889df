"""Logs: the text and JSON formats, the levels, and where the level comes from."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from maild.config import (
    LogFormat,
    LogLevel,
    LogSettings,
    Settings,
    parse_settings,
    with_log_level,
)
from maild.domain import MailState
from maild.errors import ConfigError
from maild.runtime.logs import JsonFormatter, TextFormatter, configure_logging

MINIMAL = {
    "helpdesk": {
        "accepted_domains": ["example.com"],
        "incident_address": "helpdesk@example.com",
        "pool_address": "pool@example.com",
    }
}
OUTCOME = {
    "mail": 7,
    "outcome": "ticket",
    "ticket": "I261130_0001",
    "sender": "marie@example.com",
    "msgid": "m1@client.example.com",
    "reason": None,  # left out
}


def record(
    message: str = "mail handled",
    *args: object,
    level: int = logging.INFO,
    exc: bool = False,
    extra: Mapping[str, object] | None = None,
) -> logging.LogRecord:
    """A record as log.info(message, *args, extra=extra) makes it."""
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.getLogger("maild.app.handle_mail").makeRecord(
        "maild.app.handle_mail",
        level,
        __file__,
        1,
        message,
        args,
        exc_info,
        extra=extra,
    )


def test_text_shows_the_fields_as_key_value_after_the_message() -> None:
    assert TextFormatter().format(record(extra=OUTCOME)) == (
        "INFO maild.app.handle_mail: mail handled mail=7 outcome=ticket"
        " ticket=I261130_0001 sender=marie@example.com msgid=m1@client.example.com"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (
            "auto_reply: Auto-Submitted: auto-replied",
            '"auto_reply: Auto-Submitted: auto-replied"',
        ),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("évier@exemple.fr", "évier@exemple.fr"),
        ("two\nlines", '"two\\nlines"'),
        (("a@example.com", "b@example.com"), "a@example.com,b@example.com"),
        (3, "3"),
    ],
)
def test_text_quotes_a_value_that_is_not_one_word(value: object, shown: str) -> None:
    line = TextFormatter().format(record(extra={"reason": value}))
    assert line == f"INFO maild.app.handle_mail: mail handled reason={shown}"


def test_text_keeps_a_message_on_one_line() -> None:
    line = TextFormatter().format(record("subject %s", "Bonjour\r\nINFO fake: line"))
    assert line == ("INFO maild.app.handle_mail: subject Bonjour\\r\\nINFO fake: line")


def test_text_puts_the_traceback_after_the_line() -> None:
    first, *rest = (
        TextFormatter().format(record(exc=True, extra={"mail": 7})).splitlines()
    )
    assert first == "INFO maild.app.handle_mail: mail handled mail=7"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: boom"


def test_json_is_one_object_a_line_with_the_fields_as_keys() -> None:
    line = JsonFormatter().format(
        record(extra={**OUTCOME, "to": ("a@example.com", "b@example.com")})
    )
    parsed = json.loads(line)
    assert "\n" not in line
    time = datetime.fromisoformat(parsed.pop("time"))
    assert time.utcoffset() is not None  # ISO 8601, with its offset
    assert parsed == {
        "level": "info",
        "logger": "maild.app.handle_mail",
        "message": "mail handled",
        "mail": 7,
        "outcome": "ticket",
        "ticket": "I261130_0001",
        "sender": "marie@example.com",
        "msgid": "m1@client.example.com",
        "to": ["a@example.com", "b@example.com"],
    }


def test_json_keeps_the_traceback_and_odd_values_on_the_line() -> None:
    line = JsonFormatter().format(
        record(
            "a\nb",
            level=logging.ERROR,
            exc=True,
            extra={"state": MailState.DONE, "path": Path("/x"), "level": "mine"},
        )
    )
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["message"]) == ("error", "a\nb")  # not a field's
    assert parsed["exc"].endswith("ValueError: boom")
    assert (parsed["state"], parsed["path"]) == ("done", "/x")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the process's logging: put it back afterwards."""
    root = logging.getLogger()
    names = ("maild", "mailparser")
    saved = root.handlers[:], root.level, [logging.getLogger(n).level for n in names]
    yield
    logging.captureWarnings(False)
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in zip(names, saved[2], strict=True):
        logging.getLogger(name).setLevel(level)


def lines_logged(settings: LogSettings) -> list[str]:
    """Configure logging on a string, log a line of each level from maild and
    from libraries, and return what came out."""
    out = io.StringIO()
    configure_logging(settings, out)
    for name in (
        "maild.app.handle_mail",
        "aiosmtpd",
        "apscheduler.scheduler",
        "mailparser",
    ):
        for level in (logging.DEBUG, logging.INFO, logging.WARNING):
            logging.getLogger(name).log(level, "%s", logging.getLevelName(level))
    return out.getvalue().splitlines()


@pytest.mark.usefixtures("restore_logging")
def test_maild_logs_at_its_level_and_libraries_only_warn() -> None:
    assert lines_logged(LogSettings()) == [
        "INFO maild.app.handle_mail: INFO",
        "WARNING maild.app.handle_mail: WARNING",
        "WARNING aiosmtpd: WARNING",
        "WARNING apscheduler.scheduler: WARNING",
        # mail-parser warns about every MIME part it does not render
    ]


@pytest.mark.usefixtures("restore_logging")
def test_debug_is_maild_s_debug_and_libraries_stay_quiet() -> None:
    lines = lines_logged(LogSettings(level=LogLevel.DEBUG))
    assert "DEBUG maild.app.handle_mail: DEBUG" in lines
    assert [
        line
        for line in lines
        if not line.startswith(("WARNING", "DEBUG maild", "INFO maild"))
    ] == []


@pytest.mark.usefixtures("restore_logging")
def test_libraries_speak_when_asked() -> None:
    lines = lines_logged(LogSettings(level=LogLevel.WARNING, libraries=LogLevel.DEBUG))
    assert "INFO maild.app.handle_mail: INFO" not in lines
    assert "DEBUG aiosmtpd: DEBUG" in lines
    assert "DEBUG mailparser: DEBUG" in lines


@pytest.mark.usefixtures("restore_logging")
def test_json_format_applies_to_every_logger() -> None:
    lines = lines_logged(LogSettings(format=LogFormat.JSON))
    assert [json.loads(line)["logger"] for line in lines] == [
        "maild.app.handle_mail",
        "maild.app.handle_mail",
        "aiosmtpd",
        "apscheduler.scheduler",
    ]


def settings_with(**log: str) -> Settings:
    raw = {**MINIMAL, "log": log}
    return parse_settings(raw, Path("/srv"), Path("/srv/maild.toml"))


def test_the_log_table_has_defaults() -> None:
    assert settings_with().log == LogSettings(
        LogLevel.INFO, LogFormat.TEXT, LogLevel.WARNING
    )
    assert settings_with(level="DEBUG", format="json").log == LogSettings(
        LogLevel.DEBUG, LogFormat.JSON, LogLevel.WARNING
    )


@pytest.mark.parametrize(
    ("log", "key"),
    [
        ({"level": "loud"}, "log.level"),
        ({"format": "xml"}, "log.format"),
        ({"libraries": "all"}, "log.libraries"),
        ({"colour": "red"}, "log.colour"),
    ],
)
def test_a_bad_log_value_names_its_key(log: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(**log)
    assert caught.value.key == key


def test_the_level_is_the_option_else_the_environment_else_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MAILD_LOG_LEVEL", raising=False)
    configured = settings_with(level="warning", format="json")
    assert with_log_level(configured, None) == configured
    monkeypatch.setenv("MAILD_LOG_LEVEL", "ERROR")
    assert with_log_level(configured, None).log == LogSettings(
        LogLevel.ERROR, LogFormat.JSON
    )
    assert with_log_level(configured, "debug").log.level is LogLevel.DEBUG
    monkeypatch.setenv("MAILD_LOG_LEVEL", "")  # set but empty: as if unset
    assert with_log_level(configured, None) == configured


def test_a_bad_level_in_the_environment_names_log_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILD_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as caught:
        with_log_level(settings_with(), None)
    assert caught.value.key == "log.level"
    assert "MAILD_LOG_LEVEL='loud'" in str(caught.value)
