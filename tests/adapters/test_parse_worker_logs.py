"""The parse workers log as the daemon does: the pool runs the daemon's log
set-up first in each worker. I/O (processes, a file)."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import pytest

from maild.adapters.intake.parse_worker import ParserPool
from maild.config import LogFormat, LogSettings
from maild.core.parse import ParseLimits
from maild.domain import InboundMail
from maild.errors import UnparseableMail
from maild.runtime.logs import configure_logging


# Both run inside a worker: module level, so that the worker can import them.
def warning_parse(raw: bytes, *args: object) -> InboundMail:
    logging.getLogger("somelib").warning("from the worker: %s", raw.decode())
    logging.getLogger("somelib").info("not at the default level")
    raise UnparseableMail("not a mail")


def log_to(path: Path) -> None:
    """The daemon's set-up, on a file: a worker forked from a fork server that
    an earlier test started writes to that test's stderr, not to capfd's."""
    stream = path.open("a", encoding="utf-8")  # open while the worker lives
    configure_logging(LogSettings(format=LogFormat.JSON), stream)


def test_a_worker_s_warning_is_a_line_in_the_daemon_s_format(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with (
        ParserPool(
            ParseLimits(),
            parse_seconds=30,
            workers=1,
            target=warning_parse,
            log_setup=partial(log_to, log),
        ) as pool,
        pytest.raises(UnparseableMail),
    ):
        pool.parse(b"bytes")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["level"], x["logger"], x["message"]) for x in lines] == [
        ("warning", "somelib", "from the worker: bytes")
    ]
