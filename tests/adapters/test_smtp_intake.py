"""The SMTP intake's own start and stop, without a daemon around it."""

from __future__ import annotations

import socket

import pytest

from maild.adapters.intake.smtp import SmtpIntake
from maild.domain import MailDisposition, MailOrigin


class Unused:
    def handle(
        self, raw: bytes, origin: MailOrigin
    ) -> MailDisposition:  # pragma: no cover
        raise AssertionError("no mail is sent in these tests")


def test_a_taken_port_fails_the_start_and_leaves_no_loop_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        intake = SmtpIntake(
            Unused(), "127.0.0.1", port, frozenset({"helpdesk@example.com"}), 1000
        )
        with pytest.raises(OSError, match="address already in use"):
            intake.start()
    # an open loop was closed at interpreter exit, and printed a traceback
    # on stderr under the one-line configuration error (seen in CI)
    assert intake.controller.loop.is_closed()
    assert intake.controller._thread is None
