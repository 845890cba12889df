"""Acknowledgement latency: mail at a steady rate, time to the confirmation. I/O.

IMAP: the daemon waits in IDLE; mails are APPENDed at `rate` per second over
one connection, and each is timed from just before its APPEND to the moment
the sink accepts the confirmation to its requester. Dovecot holds IDLE
notifications back about half a second, so this path has that floor.
SMTP: the same through maild's SMTP intake, timed from just before the
client sends DATA (the envelope is already given) to the confirmation at the
sink; the time to maild's 250 (committed) is reported too. Each sender has
its own address, so no per-address answer cap applies. A warm-up mail is
confirmed before the clock starts.
"""

from __future__ import annotations

import smtplib
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.corpus import INCIDENT, REQUEST, BenchMail
from bench.harness import TimedSink, imap_extra, start_maild
from tests.support.dovecot import HELPDESK, DovecotServer

WAIT_AFTER = 120.0  # seconds to wait for the last confirmations


def percentiles(values: list[float]) -> dict[str, float | int]:
    """p50, p95, p99 and max in milliseconds."""
    if not values:
        return {"count": 0}
    cuts = (
        statistics.quantiles(values, n=100, method="inclusive")
        if len(values) > 1
        else [values[0]] * 99
    )
    return {
        "count": len(values),
        "p50_ms": round(cuts[49] * 1000),
        "p95_ms": round(cuts[94] * 1000),
        "p99_ms": round(cuts[98] * 1000),
        "max_ms": round(max(values) * 1000),
    }


def _confirmed(sink: TimedSink, sent: dict[str, float]) -> dict[str, float]:
    """The first arrival at the sink addressed to each sender."""
    seen: dict[str, float] = {}
    for at, mail in sink.arrivals():
        for rcpt in mail.rcpt_tos:
            if rcpt in sent and rcpt not in seen:
                seen[rcpt] = at
    return seen


def _wait_all(sink: TimedSink, senders: set[str], timeout: float) -> None:
    sink.wait_for(
        lambda m: bool(senders.intersection(m.rcpt_tos)),
        count=len(senders),
        timeout=timeout,
    )


def _pace(index: int, started: float, rate: float) -> None:
    delay = started + index / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # the steady arrival rate is the point of this phase


def imap_latency(
    directory: Path,
    server: DovecotServer,
    warmup: BenchMail,
    mails: list[BenchMail],
    *,
    rate: float,
    database_url: str,
) -> dict[str, Any]:
    """APPEND mails at rate per second while maild IDLEs; time confirmations."""
    server.fresh_mailbox(HELPDESK)
    sink = TimedSink()
    sink.start()
    daemon = start_maild(
        directory, sink.port, database_url=database_url, extra=imap_extra(server)
    )
    sent: dict[str, float] = {}
    try:
        with server.connect(HELPDESK) as client:
            client.append("INBOX", warmup.raw)
            _wait_all(sink, {warmup.sender}, WAIT_AFTER)
            time.sleep(1.0)  # let the daemon go back to IDLE after the warm-up
            started = time.monotonic()
            for index, mail in enumerate(mails):
                _pace(index, started, rate)
                sent[mail.sender] = time.monotonic()
                client.append("INBOX", mail.raw)
        _wait_all(sink, set(sent), WAIT_AFTER)
    finally:
        peaks = daemon.stop()
        sink.stop()
    seen = _confirmed(sink, sent)
    result = percentiles([seen[s] - sent[s] for s in sent if s in seen])
    result.update(
        rate=rate,
        mails=len(mails),
        under_1mb=_under_1mb(mails, sent, seen),
        rss=peaks.as_json(),
    )
    return result


def idle_floor(
    server: DovecotServer, count: int = 10, settle: float = 0.0
) -> dict[str, Any]:
    """A bare IDLE client: from APPEND (another connection) to EXISTS seen.

    settle: seconds in IDLE before the APPEND. Right after IDLE starts, as
    maild's does after each mail, Dovecot sends EXISTS 0.5 s after the
    APPEND; after a few seconds in IDLE it is sometimes at once.
    """
    server.fresh_mailbox(HELPDESK)
    raw = b"From: a@example.com\r\nSubject: idle\r\n\r\nidle floor\r\n"
    delays = []
    with server.connect(HELPDESK) as watcher, server.connect(HELPDESK) as writer:
        watcher.select_folder("INBOX")
        for _ in range(count):
            watcher.idle()
            time.sleep(settle)  # how long the client has been idle is the point
            before = time.monotonic()
            writer.append("INBOX", raw)
            while time.monotonic() - before < 10:
                responses = watcher.idle_check(timeout=1)
                if any(isinstance(r, tuple) and b"EXISTS" in r for r in responses):
                    delays.append(time.monotonic() - before)
                    break
            watcher.idle_done()
    return percentiles(delays)


def _submit(port: int, mail: BenchMail) -> tuple[float, float]:
    """Send one mail over SMTP; return (before DATA, 250 received)."""
    to = REQUEST if f"To: {REQUEST}".encode() in mail.raw else INCIDENT
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo()
        client.mail(mail.sender)
        client.rcpt(to)
        before = time.monotonic()
        code, answer = client.data(mail.raw)
        accepted = time.monotonic()
    if code != 250:
        raise RuntimeError(f"maild answered {code} {answer!r}")
    return before, accepted


def smtp_latency(
    directory: Path,
    warmup: BenchMail,
    mails: list[BenchMail],
    *,
    rate: float,
    database_url: str,
) -> dict[str, Any]:
    """Send mails to maild's SMTP intake at rate per second; time confirmations."""
    sink = TimedSink()
    sink.start()
    daemon = start_maild(directory, sink.port, database_url=database_url)
    sent: dict[str, float] = {}
    accepted: list[float] = []
    lock = threading.Lock()

    def one(mail: BenchMail) -> None:
        before, done = _submit(daemon.intake_port, mail)
        with lock:
            sent[mail.sender] = before
            accepted.append(done - before)

    try:
        _submit(daemon.intake_port, warmup)
        _wait_all(sink, {warmup.sender}, WAIT_AFTER)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:  # an MTA sends in parallel
            futures = []
            for index, mail in enumerate(mails):
                _pace(index, started, rate)
                futures.append(pool.submit(one, mail))
            for future in futures:
                future.result()
        _wait_all(sink, set(sent), WAIT_AFTER)
    finally:
        peaks = daemon.stop()
        sink.stop()
    seen = _confirmed(sink, sent)
    result = percentiles([seen[s] - sent[s] for s in sent if s in seen])
    result.update(
        rate=rate,
        mails=len(mails),
        under_1mb=_under_1mb(mails, sent, seen),
        data_to_250=percentiles(accepted),
        rss=peaks.as_json(),
    )
    return result


def _under_1mb(
    mails: list[BenchMail], sent: dict[str, float], seen: dict[str, float]
) -> dict[str, float | int]:
    """The latencies of the mails under 1 MB: the tail is the big attachments'."""
    small = {m.sender for m in mails if len(m.raw) < 1_000_000}
    return percentiles([seen[s] - sent[s] for s in sent if s in seen and s in small])
