"""Limits enforced for real: the parse workers on resource bombs, and the service
quarantining refused mail and telling its sender once, within the answer caps.

Peak memory (VmHWM) of the parse worker is printed: run with `-s` to see it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from maild.adapters.database.models import AutoAnswerRow
from maild.adapters.intake.parse_worker import ParserPool
from maild.adapters.templates import TEMPLATE_DIR, HelpdeskAddresses, TemplateRenderer
from maild.core import notices
from maild.core.limits import REFUSAL_REASONS
from maild.core.parse import ParseLimits
from maild.domain import Audience, MailDisposition, MailOrigin, Notification
from maild.errors import MailRejected, ParseTimeout, UnparseableMail
from tests.corpus.test_hostile_parse import header_lines, many_parts, nested
from tests.support.desk import Desk

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
NORMAL = (FIXTURES / "new_ticket_en_fields.eml").read_bytes()
# ~6 s of the email package's parameter parsing in a 250 KB header block
SLOW = b"From: a@example.com\nContent-Type: text/plain" + b"; a=b" * 50_000 + b"\n\nx"
# 10 MB of one-character lines: the email package keeps each line as an object
# (~440 MiB in one process)
HUNGRY = b"From: a@example.com\n\n" + b"a\n" * 5_000_000
MIB = 1024**2
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
# SLOW takes ~6 s: three times parse_seconds; the other bombs take milliseconds
LIMITS = "[limits]\nparse_seconds = 2\nmax_attachment_bytes = 1000000\n"


def big_attachment(size: int) -> bytes:
    return (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nsee attached\n"
        b"--b\nContent-Type: application/octet-stream\n"
        b"Content-Disposition: attachment; filename=big.bin\n\n"
        + b"x" * size
        + b"\n--b--\n"
    )


def peak_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def worker_pid(pool: ParserPool) -> int:
    worker = pool._idle.queue[0]  # one worker, idle between calls
    assert worker.process.pid is not None
    return worker.process.pid


# --- the parse worker -----------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    with ParserPool(
        ParseLimits(), parse_seconds=10, workers=1, memory_bytes=1024 * MIB
    ) as parser_pool:
        yield parser_pool


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("100 levels of nesting", nested(100), "too_deep"),
        ("2,000 levels of nesting", nested(2000), "too_many_parts"),
        ("10,000 parts", many_parts(10_000), "too_many_parts"),
        ("100,000 header lines", header_lines(100_000), "headers_too_large"),
        ("21 MB attachment", big_attachment(21 * MIB), "attachment_too_large"),
    ],
)
def test_bombs_are_refused_in_the_worker_which_lives_on(
    pool: ParserPool, name: str, raw: bytes, reason: str
) -> None:
    pid = worker_pid(pool)
    started = time.monotonic()
    with pytest.raises(MailRejected) as caught:
        pool.parse(raw)
    elapsed = time.monotonic() - started
    print(
        f"\n{name}: {len(raw)} bytes, {reason} in {elapsed:.2f} s;"
        f" worker peak RSS {peak_kib(pid) // 1024} MiB"
    )
    assert caught.value.reason == reason
    assert elapsed < 5
    assert pool.parse(NORMAL).subject == "VPN does not connect"
    assert worker_pid(pool) == pid  # a refusal costs no restart


def test_a_large_mail_within_the_limits_parses_in_bounded_memory(
    pool: ParserPool,
) -> None:
    pid = worker_pid(pool)
    started = time.monotonic()
    mail = pool.parse(big_attachment(19 * MIB))
    elapsed = time.monotonic() - started
    peak = peak_kib(pid) // 1024
    print(f"\n19 MB attachment parsed in {elapsed:.2f} s; worker peak RSS {peak} MiB")
    assert len(mail.attachments[0].data) == 19 * MIB
    assert peak < 1024


def test_a_slow_mail_is_killed_at_parse_seconds_and_the_worker_replaced() -> None:
    with ParserPool(ParseLimits(), parse_seconds=1, workers=1) as timed:
        pid = worker_pid(timed)
        started = time.monotonic()
        with pytest.raises(ParseTimeout) as caught:
            timed.parse(SLOW)
        elapsed = time.monotonic() - started
        print(f"\nparameter bomb: parse_timeout after {elapsed:.2f} s")
        assert caught.value.reason == "parse_timeout"
        assert elapsed < 5  # one second of parsing, then kill and restart
        assert worker_pid(timed) != pid
        assert timed.parse(NORMAL).subject == "VPN does not connect"


def test_a_memory_bomb_hits_the_workers_own_cap() -> None:
    with ParserPool(
        ParseLimits(), parse_seconds=30, workers=1, memory_bytes=256 * MIB
    ) as capped:
        pid = worker_pid(capped)
        started = time.monotonic()
        with pytest.raises(UnparseableMail, match="worker died") as caught:
            capped.parse(HUNGRY)
        print(
            f"\nline bomb: worker died at its cap in {time.monotonic() - started:.2f} s"
        )
        assert caught.value.reason == "unparseable"
        assert worker_pid(capped) != pid
        assert capped.parse(NORMAL).subject == "VPN does not connect"


def test_a_worker_outlives_the_stop_signals_of_its_process_group() -> None:
    # Ctrl-C or systemd's SIGTERM to the group: the daemon, still finishing the
    # mail in hand, needs its worker; it closes the pool afterwards.
    with ParserPool(ParseLimits(), parse_seconds=30, workers=1) as pool:
        pid = worker_pid(pool)
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
        assert pool.parse(NORMAL).subject == "VPN does not connect"
        assert worker_pid(pool) == pid


# --- the service: quarantine, and the sender told once ----------------------------


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    handle = Desk(tmp_path_factory.mktemp("limits"), LIMITS, language="fr", now=NOW)
    yield handle
    handle.close()


def bomb(sender: str, reason: str, *headers: str) -> bytes:
    head = f"From: {sender}\nTo: helpdesk@example.com\nSubject: bombe {reason}\n"
    head += f"Message-ID: <{reason}.{sender}.{len(headers)}@client.example.com>\n"
    head += "".join(f"{h}\n" for h in headers)
    bodies = {
        "too_many_parts": many_parts(600),
        "too_deep": nested(30),
        "headers_too_large": header_lines(30_000),
        "attachment_too_large": big_attachment(2 * MIB),
        "parse_timeout": SLOW,
        "unparseable": b"Cc: =?utf-8?b?QUJDR?= <a@example.com>\n\nx\n",
    }
    body = bodies[reason].removeprefix(b"From: a@example.com\n")
    return head.encode() + body


def handle(
    desk: Desk, raw: bytes, envelope_sender: str | None = None
) -> MailDisposition:
    origin = MailOrigin(
        "smtp",
        envelope_sender=envelope_sender,
        envelope_recipients=("helpdesk@example.com",),
        size=len(raw),
    )
    return desk.handle(raw, origin)


def last_reason(desk: Desk) -> tuple[str, str]:
    row = desk.mails()[-1]
    return row.state, row.reason


@pytest.mark.parametrize(
    "reason",
    [
        "too_many_parts",
        "too_deep",
        "headers_too_large",
        "attachment_too_large",
        "parse_timeout",
        "unparseable",
    ],
)
def test_refused_mail_is_quarantined_and_its_sender_told_once(
    desk: Desk, reason: str
) -> None:
    sender = f"{reason}@example.com"
    raw = bomb(sender, reason)
    assert handle(desk, raw) is MailDisposition.QUARANTINED
    state, why = last_reason(desk)
    assert (state, why.split(":")[0]) == ("quarantined", reason)
    (notice,) = desk.outbox_to(sender)
    assert notice.subject == f"Message non pris en compte : bombe {reason}"
    assert notice.audience == Audience.SENDER.value
    assert b"In-Reply-To: <" + f"{reason}.{sender}".encode() in notice.data
    # the same mail again (a redelivery): nothing more is said
    assert handle(desk, raw) is MailDisposition.QUARANTINED
    assert len(desk.outbox_to(sender)) == 1


def test_announced_size_over_the_limit_is_refused_without_the_body(
    desk: Desk,
) -> None:
    head = b"From: Paul <paul.big@example.com>\nSubject: huge\nMessage-ID: <h@c>\n\n"
    origin = MailOrigin("imap:helpdesk/INBOX", uidvalidity=1, uid=7, size=1 << 30)
    assert desk.handle(head, origin) is MailDisposition.QUARANTINED
    assert last_reason(desk) == ("quarantined", "too_large: 1073741824 bytes")
    (notice,) = desk.outbox_to("paul.big@example.com")
    assert notice.subject == "Message non pris en compte : huge"


@pytest.mark.parametrize(
    ("sender", "headers", "envelope_sender"),
    [
        ("eve@elsewhere.org", (), None),  # an outsider: never answered
        ("auto@example.com", ("Auto-Submitted: auto-replied",), None),
        ("bulk@example.com", ("Precedence: bulk",), None),
        ("list@example.com", ("List-Id: <l.example.com>",), None),
        # our own mail come back: X-Maild-Loop from our own address
        ("helpdesk@example.com", ("X-Maild-Loop: helpdesk@example.com",), None),
        ("bounce@example.com", (), ""),  # null return path
        ("mailer-daemon@example.com", (), None),
        ("report@example.com", ("X-Autoreply: yes",), None),
    ],
)
def test_machines_and_outsiders_are_not_told(
    desk: Desk,
    sender: str,
    headers: tuple[str, ...],
    envelope_sender: str | None,
) -> None:
    raw = bomb(sender, "too_many_parts", *headers)
    assert handle(desk, raw, envelope_sender) is MailDisposition.QUARANTINED
    assert last_reason(desk)[1].startswith("too_many_parts:")
    assert [r.subject for r in desk.outbox_to(sender)] == []


def test_notices_stay_within_the_answer_caps(desk: Desk) -> None:
    sender = "flood@example.com"
    for i in range(8):
        raw = bomb(sender, "too_many_parts", f"X-Count: {i}")
        assert handle(desk, raw) is MailDisposition.QUARANTINED
    per_hour = desk.settings.limits.auto_answers_per_hour
    assert len(desk.outbox_to(sender)) == per_hour
    with desk.store.reading() as session:
        answers = session.execute(
            select(AutoAnswerRow).where(AutoAnswerRow.address == sender)
        ).scalars()
        held = [a.is_held for a in answers if a.template == "rejected"]
    assert held == [False] * per_hour + [True] * (8 - per_hour)


# --- the notice itself ------------------------------------------------------------


@pytest.mark.parametrize("language", ["fr", "en"])
def test_each_reason_gets_its_own_explanation(language: str) -> None:
    renderer = TemplateRenderer(
        TEMPLATE_DIR,
        language,
        "HD",
        HelpdeskAddresses("helpdesk@example.com", "demandes@example.com", "t@x.org"),
    )
    bodies = set()
    for reason in sorted(REFUSAL_REASONS):
        mail = renderer.render(
            Notification(
                "rejected",
                Audience.SENDER,
                ("marie@example.com",),
                notices.Rejected(
                    refused_subject="Imprimante <b>HS</b>\r\nBcc: x@example.org",
                    reason=reason,
                ),
            )
        )
        assert "\n" not in mail.subject
        assert "<b>" not in mail.html
        assert "Imprimante &lt;b&gt;HS&lt;/b&gt;" in mail.html
        assert "helpdesk@example.com" in mail.text
        bodies.add(mail.text)
    assert len(bodies) == len(REFUSAL_REASONS)
