"""Logging set-up: maild's lines on stderr, as text or JSON lines. No I/O but stderr.

Called once by each process's entry point (`maild/__main__.py`, the sender
process's `serve`, each parse worker as the daemon asks), never by a library
module on its own: maild's own loggers at the configured level, every other
library at `[log] libraries` (WARNING unless asked). A line's structured
fields are the `extra=` of its logging call (`log.info("mail handled",
extra={"mail": 7, "ticket": "I261129_0007"})`); the text format writes them
after the message as key=value, the JSON format as keys of the line's object.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final, TextIO

from maild.config import LogFormat, LogSettings

# What a LogRecord holds without extra=: anything else is a field.
_BARE: Final = logging.LogRecord("", logging.INFO, "", 0, "", (), None)
_STANDARD: Final = frozenset((*vars(_BARE), "message", "asctime", "taskName"))
_PLAIN_PUNCTUATION: Final = frozenset("@._-+:/,<>[]()#%&*!?'")
_ESCAPES: Final = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\t"}
_CONTROLS: Final = {c: _ESCAPES.get(c, f"\\x{c:02x}") for c in (*range(32), 127)}
# mail-parser warns about every MIME type it does not render: not ours to act on.
_QUIETER: Final = {"mailparser": logging.ERROR}


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Send every log line to stream (stderr) in the configured format and levels."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.format is LogFormat.JSON else TextFormatter()
    )
    libraries = _level(settings.libraries)
    logging.basicConfig(level=libraries, handlers=[handler], force=True)
    logging.getLogger("maild").setLevel(_level(settings.level))
    for name, quieter in _QUIETER.items():  # unless libraries were asked to speak
        is_asked = libraries < logging.WARNING
        logging.getLogger(name).setLevel(libraries if is_asked else quieter)
    logging.captureWarnings(True)  # Python's warnings as log lines, not raw text


def fields(record: logging.LogRecord) -> Iterator[tuple[str, object]]:
    """The structured fields of a record (its extra=), in the order given; None
    values left out."""
    for key, value in record.__dict__.items():
        if key not in _STANDARD and value is not None:
            yield key, value


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`; one line, the traceback after it."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        parts = [f"{record.levelname} {record.name}: {_one_line(record.message)}"]
        parts.extend(f"{key}={_text_value(value)}" for key, value in fields(record))
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, the
    fields, and `exc` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields(record):
            line.setdefault(key, value)  # the four above are never overwritten
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _level(level: str) -> int:
    return logging.getLevelNamesMapping()[level.upper()]


def _text_value(value: object) -> str:
    """A value as key=value shows it: bare when it is plain, else quoted (JSON)."""
    if isinstance(value, list | tuple | frozenset | set):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and all(c.isalnum() or c in _PLAIN_PUNCTUATION for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _one_line(text: str) -> str:
    """Keep a message on its line: a line break in it (from a mail's header,
    say) must not start what looks like another log line of its own."""
    return text.translate(_CONTROLS)
