"""A mail that arrives between the last SELECT and IDLE is seen at once.

Dovecot announces it right behind "+ idling"; imaplib reads both lines into
its buffer, where a poll of the socket cannot see the second. Regression: the
intake waited for the next unrelated server line (minutes) or the IDLE renewal.
"""

from __future__ import annotations

import threading
import time

import pytest

from maild.adapters.intake.imap import ImapIntake, has_unread
from maild.domain import MailDisposition, MailOrigin
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MAIL = b"From: marie@example.com\r\nSubject: entre deux\r\n\r\nAide\r\n"


class Keeps:
    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        raise AssertionError("not called here")


@pytest.mark.parametrize("round_", range(5))
def test_mail_between_select_and_idle_ends_the_wait_at_once(
    clean_mailbox: DovecotServer, round_: int
) -> None:
    intake = ImapIntake(clean_mailbox.settings(), Keeps(), idle_renew_seconds=10)
    try:
        client = intake._connected()
        assert intake._select(client) == 0
        clean_mailbox.append(HELPDESK, MAIL)  # after the SELECT, before IDLE
        began = time.monotonic()
        intake._idle(client, threading.Event())
        assert time.monotonic() - began < 2, "the announced mail was not seen"
        assert intake._select(client) == 1  # the connection is still usable
    finally:
        intake.close()


def test_nothing_unread_leaves_the_connection_as_it_was(
    clean_mailbox: DovecotServer,
) -> None:
    client = clean_mailbox.connect()
    try:
        client.select_folder("INBOX")
        timeout = client.socket().gettimeout()
        client.idle()
        assert not has_unread(client)
        assert client.socket().gettimeout() == timeout
        clean_mailbox.append(HELPDESK, MAIL)  # announced during IDLE: polled
        seen = wait_until(lambda: client.idle_check(timeout=1), 5, "EXISTS")
        client.idle_done()
        assert any(b"EXISTS" in r for r in seen if isinstance(r, tuple))
    finally:
        client.logout()
