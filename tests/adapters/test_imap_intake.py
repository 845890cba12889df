"""IMAP intake against a real private Dovecot (tests/support/dovecot.py)."""

from __future__ import annotations

import logging
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import imapclient.imapclient
import pytest

from maild.adapters.intake.imap import (
    ImapIntake,
    folder_parents,
    server_folder,
    size_groups,
)
from maild.domain import MailDisposition, MailOrigin
from maild.errors import ConfigError, MailboxUnavailable, TransientError
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.waiting import wait_until

DEADLINE = 10.0
SEEN = b"\\Seen"


def make_mail(
    subject: str, body: str = "Bonjour,\r\nmon PC ne démarre plus.\r\n"
) -> bytes:
    """Build a small RFC 5322 mail."""
    return (
        f"From: Alice <alice@example.com>\r\nTo: {HELPDESK}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


@dataclass
class RecordingHandler:
    """Records each mail; quarantines those whose subject says so."""

    seen: list[tuple[MailOrigin, bytes]] = field(default_factory=list)
    times: dict[bytes, float] = field(default_factory=dict)
    failures: int = 0  # raise TransientError this many times first
    before: Callable[[MailOrigin], None] | None = None

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        if self.before is not None:
            self.before(origin)
        if self.failures:
            self.failures -= 1
            raise TransientError("store is busy")
        self.seen.append((origin, raw))
        self.times[_subject(raw)] = time.monotonic()
        if b"Subject: quarantine" in raw:
            return MailDisposition.QUARANTINED
        return MailDisposition.DONE


def _subject(raw: bytes) -> bytes:
    return next(line for line in raw.splitlines() if line.startswith(b"Subject:"))


@pytest.fixture
def running() -> Iterator[Callable[[ImapIntake], threading.Event]]:
    """Run intakes in threads; stop them (and check they stop fast) after the test."""
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def start(intake: ImapIntake) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=intake.run, args=(stop,), daemon=True)
        thread.start()
        threads.append((thread, stop))
        return stop

    yield start
    for thread, stop in threads:
        began = time.monotonic()
        stop.set()
        thread.join(timeout=DEADLINE)
        assert not thread.is_alive()
        assert time.monotonic() - began < 3.0, "stop took too long"


@pytest.mark.integration
def test_every_mail_reaches_handler_once_and_leaves_inbox(
    clean_mailbox: DovecotServer,
) -> None:
    mails = [make_mail("printer"), make_mail("quarantine me"), make_mail("vpn")]
    uids = [clean_mailbox.append(HELPDESK, raw) for raw in mails]
    handler = RecordingHandler()
    intake = ImapIntake(clean_mailbox.settings(), handler)
    try:
        assert intake.run_once() == 3
        assert intake.run_once() == 0
    finally:
        intake.close()

    assert [raw for _o, raw in handler.seen] == mails
    origins = [origin for origin, _raw in handler.seen]
    assert [o.uid for o in origins] == uids
    assert {o.source for o in origins} == {f"imap:{HELPDESK}/INBOX"}
    assert all(o.uidvalidity for o in origins)
    assert [o.size for o in origins] == [len(raw) for raw in mails]
    assert clean_mailbox.list_uids(HELPDESK, "INBOX") == []
    done = clean_mailbox.fetch_all(HELPDESK, "maild/done")
    quarantined = clean_mailbox.fetch_all(HELPDESK, "maild/quarantine")
    assert sorted(raw for raw, _f in done.values()) == sorted([mails[0], mails[2]])
    assert [raw for raw, _f in quarantined.values()] == [mails[1]]


@pytest.mark.integration
def test_next_mails_are_prepared_ahead_except_one_over_the_limit(
    clean_mailbox: DovecotServer,
) -> None:
    small = [make_mail(f"ahead {i}") for i in range(4)]
    big = make_mail("ahead big", "x" * 5000)
    mails = [small[0], small[1], big, small[2], small[3]]
    for raw in mails:
        clean_mailbox.append(HELPDESK, raw)
    ahead: list[bytes] = []
    prepared_when_handled: list[list[bytes]] = []
    handler = RecordingHandler(before=lambda _o: prepared_when_handled.append([*ahead]))
    intake = ImapIntake(
        clean_mailbox.settings(),
        handler,
        max_mail_bytes=2000,
        prepare=ahead.append,
        prepare_ahead=2,
    )
    try:
        assert intake.run_once() == 5
    finally:
        intake.close()
    # while a mail is handled, the next two are handed over to be prepared;
    # the one over the limit is refused by its size and never parsed
    assert prepared_when_handled == [
        [small[1]],  # and the big one, skipped
        [small[1], small[2]],
        [small[1], small[2], small[3]],  # when the big one is handled
        [small[1], small[2], small[3]],
        [small[1], small[2], small[3]],
    ]
    assert [raw for _o, raw in handler.seen][:2] == small[:2]
    assert clean_mailbox.list_uids(HELPDESK, "INBOX") == []


@pytest.mark.integration
def test_seen_is_never_set(clean_mailbox: DovecotServer) -> None:
    clean_mailbox.append(HELPDESK, make_mail("seen check"))
    flags_during: list[tuple[bytes, ...]] = []

    def look(_origin: MailOrigin) -> None:
        flags_during.extend(f for _r, f in clean_mailbox.fetch_all(HELPDESK).values())

    intake = ImapIntake(clean_mailbox.settings(), RecordingHandler(before=look))
    try:
        assert intake.run_once() == 1
    finally:
        intake.close()
    assert flags_during
    assert all(SEEN not in flags for flags in flags_during)
    moved = clean_mailbox.fetch_all(HELPDESK, "maild/done")
    assert [SEEN in flags for _raw, flags in moved.values()] == [False]


@pytest.mark.integration
def test_transient_error_leaves_mail_in_inbox(clean_mailbox: DovecotServer) -> None:
    uid = clean_mailbox.append(HELPDESK, make_mail("database down"))
    handler = RecordingHandler(failures=1)
    intake = ImapIntake(clean_mailbox.settings(), handler)
    try:
        with pytest.raises(TransientError, match="store is busy"):
            intake.run_once()
        assert clean_mailbox.list_uids(HELPDESK) == [uid]
        assert handler.seen == []
        assert intake.run_once() == 1
    finally:
        intake.close()
    assert clean_mailbox.list_uids(HELPDESK) == []


@pytest.mark.integration
def test_run_retries_after_transient_error(
    clean_mailbox: DovecotServer, running: Callable[[ImapIntake], threading.Event]
) -> None:
    clean_mailbox.append(HELPDESK, make_mail("retry later"))
    handler = RecordingHandler(failures=2)
    running(ImapIntake(clean_mailbox.settings(), handler))
    wait_until(lambda: len(handler.seen) == 1, DEADLINE)
    wait_until(lambda: clean_mailbox.list_uids(HELPDESK) == [], DEADLINE)


@pytest.mark.integration
def test_idle_delivers_new_mail_quickly(
    clean_mailbox: DovecotServer, running: Callable[[ImapIntake], threading.Event]
) -> None:
    handler = RecordingHandler()
    intake = ImapIntake(clean_mailbox.settings(), handler)
    running(intake)
    wait_until(lambda: intake.has_idle, DEADLINE)
    wait_until(lambda: clean_mailbox.folders().count("maild/done") == 1, DEADLINE)
    latencies = []
    for n in range(20):
        raw = make_mail(f"idle {n}")
        appended = time.monotonic()
        clean_mailbox.append(HELPDESK, raw)
        wait_until(lambda raw=raw: _subject(raw) in handler.times, DEADLINE)
        latencies.append(handler.times[_subject(raw)] - appended)
    print(
        f"\nIDLE APPEND->handler latency over {len(latencies)} mails: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    assert len(handler.seen) == 20
    wait_until(
        lambda: len(clean_mailbox.list_uids(HELPDESK, "maild/done")) == 20, DEADLINE
    )


@pytest.mark.integration
def test_mail_arriving_while_one_is_handled_is_not_left_behind(
    clean_mailbox: DovecotServer, running: Callable[[ImapIntake], threading.Event]
) -> None:
    """Regression: its EXISTS came with the MOVE answer, and IDLE never repeated it."""
    clean_mailbox.append(HELPDESK, make_mail("first"))

    def append_during_handling(_origin: MailOrigin) -> None:
        if not handler.seen:
            clean_mailbox.append(HELPDESK, make_mail("second"))

    handler = RecordingHandler(before=append_during_handling)
    intake = ImapIntake(clean_mailbox.settings(), handler)
    running(intake)
    wait_until(lambda: len(handler.seen) == 2, DEADLINE)
    assert intake.has_idle


@pytest.mark.integration
def test_polls_without_idle(
    dovecot_no_idle: DovecotServer, running: Callable[[ImapIntake], threading.Event]
) -> None:
    dovecot_no_idle.fresh_mailbox(HELPDESK)
    handler = RecordingHandler()
    intake = ImapIntake(dovecot_no_idle.settings(poll_seconds=1), handler)
    running(intake)
    wait_until(lambda: dovecot_no_idle.folders().count("maild/done") == 1, DEADLINE)
    assert not intake.has_idle
    dovecot_no_idle.append(HELPDESK, make_mail("polled"))
    wait_until(lambda: len(handler.seen) == 1, DEADLINE)
    wait_until(
        lambda: len(dovecot_no_idle.list_uids(HELPDESK, "maild/done")) == 1, DEADLINE
    )


@pytest.mark.integration
def test_without_move_expunges_only_the_handled_uid(
    dovecot_server: Callable[..., DovecotServer],
) -> None:
    server = dovecot_server(without=("MOVE",))
    server.fresh_mailbox(HELPDESK)
    server.append(HELPDESK, make_mail("fallback"))
    handler = RecordingHandler()

    def person_marks_a_mail_deleted(_origin: MailOrigin) -> None:
        if not handler.seen:  # flagged \Deleted, not expunged: must survive
            server.append(HELPDESK, make_mail("keep"), flags=(b"\\Deleted",))

    handler.before = person_marks_a_mail_deleted
    intake = ImapIntake(server.settings(), handler)
    try:
        assert intake.run_once() == 2  # a plain EXPUNGE would have lost "keep"
        assert not intake.has_move
    finally:
        intake.close()
    assert [_subject(raw) for _o, raw in handler.seen] == [
        b"Subject: fallback",
        b"Subject: keep",
    ]
    assert server.list_uids(HELPDESK) == []
    assert len(server.list_uids(HELPDESK, "maild/done")) == 2


@pytest.mark.integration
def test_refuses_server_without_move_or_uidplus(
    dovecot_server: Callable[..., DovecotServer],
) -> None:
    server = dovecot_server(without=("MOVE", "UIDPLUS"))
    intake = ImapIntake(server.settings(), RecordingHandler())
    with pytest.raises(ConfigError, match="neither MOVE nor UIDPLUS"):
        intake.run_once()
    intake.close()


@pytest.mark.integration
def test_folders_follow_the_server_separator(
    dovecot_server: Callable[..., DovecotServer],
) -> None:
    server = dovecot_server(separator=".")
    server.fresh_mailbox(HELPDESK)
    server.append(HELPDESK, make_mail("dotted"))
    intake = ImapIntake(
        server.settings(quarantine_folder="maild/q/deep"), RecordingHandler()
    )
    try:
        assert intake.run_once() == 1
    finally:
        intake.close()
    folders = server.folders()
    assert {"maild", "maild.done", "maild.q", "maild.q.deep"} <= set(folders)
    assert not [name for name in folders if "/" in name]
    assert len(server.list_uids(HELPDESK, "maild.done")) == 1


@pytest.mark.integration
@pytest.mark.parametrize("how", ["kick", "kill"])
def test_reconnects_after_the_connection_is_lost(
    clean_mailbox: DovecotServer,
    running: Callable[[ImapIntake], threading.Event],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="maild.adapters.intake.imap")
    handler = RecordingHandler()
    running(ImapIntake(clean_mailbox.settings(), handler))
    clean_mailbox.append(HELPDESK, make_mail("before"))
    wait_until(lambda: len(handler.seen) == 1, DEADLINE)
    if how == "kick":
        clean_mailbox.kick(HELPDESK)  # the server says BYE, then closes
    else:
        assert clean_mailbox.kill_sessions(HELPDESK)  # no BYE: end of stream
    clean_mailbox.append(HELPDESK, make_mail("meanwhile"))
    wait_until(lambda: len(handler.seen) == 2, DEADLINE)
    wait_until(lambda: clean_mailbox.list_uids(HELPDESK) == [], DEADLINE)
    assert any(" lost (" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("name", "separator", "prefix", "expected"),
    [
        ("maild/done", "/", "", "maild/done"),
        ("maild/done", ".", "", "maild.done"),
        ("maild/done", ".", "INBOX.", "INBOX.maild.done"),
        ("INBOX", ".", "INBOX.", "INBOX"),
        ("inbox", "/", "", "INBOX"),
        ("maild/done", None, "", "maild/done"),
    ],
)
def test_server_folder(
    name: str, separator: str | None, prefix: str, expected: str
) -> None:
    assert server_folder(name, separator, prefix) == expected


@pytest.mark.parametrize(
    ("folder", "separator", "expected"),
    [
        ("maild/done", "/", ["maild", "maild/done"]),
        ("a.b.c", ".", ["a", "a.b", "a.b.c"]),
        ("flat", None, ["flat"]),
    ],
)
def test_folder_parents(
    folder: str, separator: str | None, expected: list[str]
) -> None:
    assert folder_parents(folder, separator) == expected


@pytest.mark.parametrize(
    ("sized", "limit", "expected"),
    [
        ([], 10, []),
        ([(1, 4), (2, 4), (3, 4)], 10, [[1, 2], [3]]),
        ([(1, 50), (2, 1)], 10, [[1], [2]]),
        ([(1, 5), (2, 5)], 10, [[1, 2]]),
    ],
)
def test_size_groups(
    sized: list[tuple[int, int]], limit: int, expected: list[list[int]]
) -> None:
    assert list(size_groups(sized, limit)) == expected


@pytest.mark.integration
def test_tls_is_attempted_and_its_failure_translated(dovecot: DovecotServer) -> None:
    intake = ImapIntake(
        dovecot.settings(tls=True), RecordingHandler(), timeout_seconds=5
    )
    with pytest.raises(MailboxUnavailable) as caught:
        intake.run_once()
    assert isinstance(caught.value.__cause__, ssl.SSLError)
    intake.close()


@pytest.mark.integration
def test_refused_login_is_unavailable_and_logged(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    intake = ImapIntake(dovecot.settings(password="wrong"), RecordingHandler())
    with pytest.raises(MailboxUnavailable):
        intake.run_once()
    intake.close()
    assert [r.levelname for r in caplog.records if "refused" in r.getMessage()] == [
        "ERROR"
    ]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_imaplib_formats_the_mail_it_reads_only_for_a_debug_trace(
    clean_mailbox: DovecotServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    level: int,
) -> None:
    # IMAPClient asks imaplib for a trace of everything, the repr of each
    # fetched mail included, and lets its logger drop it: CPU for nothing.
    secret = "le-corps-du-mail-" * 20
    clean_mailbox.append(HELPDESK, make_mail("traced", body=secret))
    formatted: list[str] = []  # by the intake's connection, from here on
    adapter = imapclient.imapclient.IMAPlibLoggerAdapter
    trace = adapter.debug

    def counting(self: logging.LoggerAdapter, msg: object, *args: object) -> None:
        formatted.append(str(msg))
        trace(self, msg, *args)

    monkeypatch.setattr(adapter, "debug", counting)
    caplog.set_level(level, logger="imapclient.imaplib")
    intake = ImapIntake(clean_mailbox.settings(), RecordingHandler())
    try:
        assert intake.run_once() == 1
    finally:
        intake.close()
    traced = [r.getMessage() for r in caplog.records if r.name == "imapclient.imaplib"]
    if level == logging.DEBUG:  # whoever asks for the trace still gets it
        assert any(secret in message for message in traced)
    else:
        assert formatted == []
