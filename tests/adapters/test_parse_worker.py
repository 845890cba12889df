"""ParserPool: parse_mail in worker processes that can be killed and replaced."""

from __future__ import annotations

import base64
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from maild.adapters.intake.parse_worker import AHEAD, ParserPool
from maild.core.parse import ParseLimits, parse_mail
from maild.domain import InboundMail
from maild.errors import MailTooLarge, ParseTimeout, UnparseableMail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
NORMAL = (FIXTURES / "new_ticket_en_fields.eml").read_bytes()


# Targets run inside the workers: module level, so a worker can import them.
def misbehaving_parse(
    raw: bytes,
    envelope_sender: str | None,
    envelope_recipients: tuple[str, ...],
    limits: ParseLimits,
) -> InboundMail:
    """Parse normally, unless the mail asks to hang, die, eat memory or count."""
    if raw.startswith(b"COUNT "):  # COUNT <file>: one line in file per parse
        path, _, raw = raw[6:].partition(b"\n")
        with open(path, "ab") as parses:
            parses.write(b"parsed\n")
    if raw.startswith(b"HANG"):
        time.sleep(60)  # the pathological mail: far beyond parse_seconds
    if raw.startswith(b"DIE"):
        os._exit(3)
    if raw.startswith(b"HOG"):
        hog = bytearray(2 * 1024**3)  # beyond the worker's address-space cap
        return parse_mail(bytes(hog[:1]))
    return parse_mail(raw, envelope_sender, envelope_recipients, limits)


class DiesOnArrival:
    """A target whose worker exits while unpacking it, before it is ready."""

    def __call__(self, raw: bytes, *args: object) -> InboundMail:
        return parse_mail(raw)

    def __getstate__(self) -> dict[str, int]:
        return {"armed": 1}

    def __setstate__(self, state: dict[str, int]) -> None:
        os._exit(4)


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    with ParserPool(
        ParseLimits(max_parts=10),
        parse_seconds=0.5,
        workers=2,
        memory_bytes=768 * 1024**2,
        target=misbehaving_parse,
    ) as parser_pool:
        yield parser_pool


def test_parses_like_parse_mail(pool: ParserPool) -> None:
    mail = pool.parse(NORMAL, "John.Smith@example.com", ("helpdesk@example.com",))
    expected = parse_mail(NORMAL, "John.Smith@example.com", ("helpdesk@example.com",))
    assert mail == expected
    assert mail.envelope_sender == "john.smith@example.com"


def test_rejection_in_the_worker_reaches_the_caller(pool: ParserPool) -> None:
    parts = b"".join(b"--b\nContent-Type: text/plain\n\n%d\n" % i for i in range(20))
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"
    with pytest.raises(MailTooLarge, match="more than 10 MIME parts"):
        pool.parse(raw)
    assert pool.parse(NORMAL).subject == "VPN does not connect"


def test_overrun_kills_the_worker_and_the_pool_recovers(pool: ParserPool) -> None:
    started = time.monotonic()
    with pytest.raises(ParseTimeout, match=r"longer than 0\.5 s"):
        pool.parse(b"HANG\n\n")
    assert time.monotonic() - started < 10
    for _ in range(4):  # both workers, the replacement included, still answer
        assert pool.parse(NORMAL).subject == "VPN does not connect"


def test_dead_worker_is_replaced(pool: ParserPool) -> None:
    with pytest.raises(UnparseableMail, match="parser worker died: exit code 3"):
        pool.parse(b"DIE\n\n")
    for _ in range(4):
        assert pool.parse(NORMAL).subject == "VPN does not connect"


def test_memory_cap_turns_a_memory_hog_into_a_rejection(pool: ParserPool) -> None:
    with pytest.raises(UnparseableMail, match="parser worker died: exit code 1"):
        pool.parse(b"HOG\n\n")
    assert pool.parse(NORMAL).subject == "VPN does not connect"


def test_parallel_callers_get_their_own_answers(pool: ParserPool) -> None:
    mails = [NORMAL.replace(b"VPN does not", b"VPN %d does not" % i) for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as executor:
        subjects = list(executor.map(lambda raw: pool.parse(raw).subject, mails))
    assert subjects == [f"VPN {i} does not connect" for i in range(24)]


def test_a_large_mail_crosses_the_pipe_intact() -> None:
    data = os.urandom(18 * 1024**2)
    encoded = base64.encodebytes(data)
    raw = (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nbig file\n"
        b"--b\nContent-Type: application/octet-stream; name=big.bin\n"
        b"Content-Transfer-Encoding: base64\n\n" + encoded + b"--b--\n"
    )
    with ParserPool(ParseLimits(), parse_seconds=30, workers=1) as pool:
        (attachment,) = pool.parse(raw).attachments
    assert attachment.data == data


def test_close_twice_is_harmless() -> None:
    pool = ParserPool(ParseLimits(), parse_seconds=5, workers=1, memory_bytes=None)
    assert pool.parse(NORMAL).message_id == "en-0001@mail.example.com"
    pool.close()
    pool.close()


def test_a_worker_that_cannot_start_is_reported_when_waited_for() -> None:
    pool = ParserPool(ParseLimits(), parse_seconds=5, workers=2, target=DiesOnArrival())
    with pytest.raises(UnparseableMail, match="failed to start: exit code 4"):
        pool.wait_ready()
    assert parsers_alive() == []
    pool.close()  # nothing left to stop: returns


def test_a_pool_closed_before_its_workers_are_ready_stops_them() -> None:
    pool = ParserPool(ParseLimits(), parse_seconds=5, workers=2)
    assert len(parsers_alive()) == 2  # started, not waited for
    pool.close()
    assert parsers_alive() == []


def test_a_parse_before_wait_ready_waits_for_the_workers() -> None:
    with ParserPool(ParseLimits(), parse_seconds=30, workers=2) as pool:
        assert pool.parse(NORMAL).message_id == "en-0001@mail.example.com"


def parsers_alive() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "maild-parser"]


def counted(path: Path, raw: bytes) -> bytes:
    return b"COUNT " + str(path).encode() + b"\n" + raw


def parses_of(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_a_mail_parsed_ahead_is_not_parsed_again(
    pool: ParserPool, tmp_path: Path
) -> None:
    log = tmp_path / "parses"
    raw = counted(log, NORMAL)
    pool.parse_ahead(raw, "john.smith@example.com")
    mail = pool.parse(raw, "john.smith@example.com")
    assert mail.subject == "VPN does not connect"
    assert mail.envelope_sender == "john.smith@example.com"
    assert parses_of(log) == 1


def test_a_parse_ahead_serves_only_the_same_request(
    pool: ParserPool, tmp_path: Path
) -> None:
    log = tmp_path / "parses"
    raw = counted(log, NORMAL)
    pool.parse_ahead(raw, "someone.else@example.com")
    mail = pool.parse(raw, "john.smith@example.com")  # another envelope
    assert mail.envelope_sender == "john.smith@example.com"
    twin = bytes(bytearray(raw))  # equal bytes, another mail in hand
    pool.parse_ahead(raw)
    assert pool.parse(twin).subject == "VPN does not connect"
    pool.parse(raw)  # the one parsed ahead: waits for it, parses nothing more
    assert parses_of(log) == 4


def test_only_the_newest_parses_ahead_are_kept(
    pool: ParserPool, tmp_path: Path
) -> None:
    logs = [tmp_path / f"parses{i}" for i in range(AHEAD + 2)]
    mails = [counted(log, NORMAL) for log in logs]
    for raw in mails:
        pool.parse_ahead(raw)
    for raw in mails:
        pool.parse(raw)
    # the mail in hand and the AHEAD next are kept; the oldest was dropped and
    # parsed again when asked for; memory stays bounded
    assert [parses_of(log) for log in logs] == [2] + [1] * (AHEAD + 1)


def test_a_failure_ahead_reaches_the_caller_and_the_pool_recovers(
    pool: ParserPool,
) -> None:
    raw = b"HANG\n\n"
    pool.parse_ahead(raw)
    with pytest.raises(ParseTimeout, match=r"longer than 0\.5 s"):
        pool.parse(raw)
    assert pool.parse(NORMAL).subject == "VPN does not connect"
