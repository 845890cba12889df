"""Hostile mail against the real daemon: bombs, malformed MIME, injection, files.

One daemon (SMTP intake, IMAP on a private Dovecot, relay = a sink) runs in a
working directory of its own. Each resource bomb must end within the budget
with the daemon still serving the next mail; its sender (in the accepted
domains) is told once. The peak memory (VmHWM) of the daemon and of its parse
workers is sampled all along and printed, with the time of each bomb:

    /tmp/venv/bin/python -m pytest tests/integration/test_hostile_mail.py -s -q

At the end, every file the daemon wrote must be under storage.dir (or be the
SQLite database), and no attachment name may have become a file anywhere.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import pwd
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.corpus.test_hostile_parse import header_lines, many_parts, nested
from tests.support.daemon import ROOT, is_listening, write_config
from tests.support.dovecot import HELPDESK, DovecotServer
from tests.support.smtp_sink import ReceivedMail, SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HOSTILE = ROOT / "tests" / "fixtures" / "mail" / "hostile"
BUDGET = 30.0  # seconds from sending a bomb to its sender's notice
MIB = 1024**2
LIMITS = """
[limits]
parse_seconds = 1
"""
OWN_HEADERS = {
    "from", "to", "subject", "date", "message-id", "in-reply-to", "references",
    "auto-submitted", "x-auto-response-suppress", "x-maild-loop", "x-maild-ticket",
    "mime-version", "content-type",
}  # fmt: skip
MARKER = "maild-hostile-" + uuid.uuid4().hex[:12]


# --- the daemon, its peak memory, its files -------------------------------------


def descendants(pid: int) -> set[int]:
    """The processes below pid (parse workers sit under the forkserver)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@dataclass
class PeakWatcher:
    """Samples VmHWM of the daemon and its descendants until stopped."""

    pid: int
    peaks: dict[int, tuple[str, int]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for pid in {self.pid} | descendants(self.pid):
                info = status(pid)
                if "VmHWM" in info:
                    kib = int(info["VmHWM"].split()[0])
                    name = "daemon" if pid == self.pid else info.get("Name", "?")
                    old = self.peaks.get(pid, (name, 0))[1]
                    self.peaks[pid] = (name, max(old, kib))

    def daemon_mib(self) -> int:
        return self.peaks.get(self.pid, ("daemon", 0))[1] // 1024

    def children_mib(self) -> list[tuple[int, str, int]]:
        return sorted(
            (pid, name, kib // 1024)
            for pid, (name, kib) in self.peaks.items()
            if pid != self.pid
        )


@dataclass
class Desk:
    directory: Path
    config: Path
    process: subprocess.Popen[bytes]
    intake_port: int
    sink: SmtpSink
    server: DovecotServer
    watcher: PeakWatcher
    timings: dict[str, tuple[float, int]] = field(default_factory=dict)

    def timed(self, name: str, started: float) -> float:
        """Record how long a bomb took, and the daemon's peak RSS after it."""
        elapsed = time.monotonic() - started
        peak = int(status(self.process.pid)["VmHWM"].split()[0]) // 1024
        self.timings[name] = (elapsed, peak)
        return elapsed

    def send(self, raw: bytes, sender: str = "marie@example.com") -> None:
        """Send raw over SMTP, its lines ended by CRLF as SMTP wants them."""
        with smtplib.SMTP("127.0.0.1", self.intake_port, timeout=60) as client:
            client.sendmail(sender, ["helpdesk@example.com"], crlf(raw))

    def last_mail(self) -> tuple[str, str, int | None]:
        with sqlite3.connect(
            f"file:{self.directory / 'maild.db'}?mode=ro", uri=True
        ) as db:
            row = db.execute(
                "SELECT state, reason, ticket_id FROM mails ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return row[0], row[1], row[2]

    def notices_to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def maild(self, *args: str) -> object:
        done = subprocess.run(
            [sys.executable, "-m", "maild", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.directory,
            env=daemon_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def daemon_env() -> dict[str, str]:
    # The daemon runs away from the repository: it finds maild by PYTHONPATH,
    # and writes no bytecode, so that every file it writes is its own doing.
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def snapshot(*places: Path, depth: int = 1) -> dict[Path, int]:
    """Files (and their mtimes) in places, down to depth levels."""
    found: dict[Path, int] = {}
    for place in places:
        base = len(place.parts)
        for root, dirs, files in os.walk(place):
            if len(Path(root).parts) - base >= depth:
                dirs.clear()
            for name in files:
                path = Path(root) / name
                try:
                    found[path] = path.lstat().st_mtime_ns
                except OSError:
                    continue  # gone meanwhile
    return found


WATCHED = (Path("/etc"), Path("/tmp"), Path("/var/tmp"), Path("/root"), Path("/"))


@pytest.fixture(scope="module")
def desk(
    tmp_path_factory: pytest.TempPathFactory, dovecot: DovecotServer
) -> Iterator[Desk]:
    dovecot.fresh_mailbox(HELPDESK)
    sink = SmtpSink()
    sink.start()
    directory = tmp_path_factory.mktemp("hostile")
    extra = dovecot.config_section() + LIMITS
    config, port = write_config(directory, sink_port=sink.port, extra=extra)
    before = snapshot(*WATCHED)
    log = directory / "maild.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=daemon_env(),
        )
    wait_for_port(process, port, log)
    watcher = PeakWatcher(process.pid)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    handle = Desk(directory, config, process, port, sink, dovecot, watcher)
    try:
        yield handle
    finally:
        watcher.stop.set()
        thread.join()
        open_files = written_files(process.pid)
        process.send_signal(signal.SIGTERM)
        status_code = process.wait(30)
        sink.stop()
        report(handle)
        assert status_code == 0, log.read_text()
        check_files(directory, before, open_files)


def wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    try:
        wait_until(lambda: is_listening(process, port, log), 60, "the intake")
    except TimeoutError:
        process.kill()
        raise RuntimeError(
            "maild did not open its intake:\n" + log.read_text()
        ) from None


def written_files(pid: int) -> set[Path]:
    """Regular files the daemon and its children hold open for writing."""
    found: set[Path] = set()
    for proc in {pid} | descendants(pid):
        fds = Path(f"/proc/{proc}/fd")
        for fd in fds.iterdir() if fds.exists() else ():
            try:
                target = Path(os.readlink(fd))
                flags = int(
                    (Path(f"/proc/{proc}/fdinfo") / fd.name).read_text().split()[3], 8
                )
            except (OSError, ValueError, IndexError):
                continue  # closed meanwhile
            if target.is_file() and flags & (os.O_WRONLY | os.O_RDWR):
                found.add(target)
    return found


def report(desk: Desk) -> None:
    print(f"\ndaemon peak RSS (VmHWM): {desk.watcher.daemon_mib()} MiB")
    for pid, name, mib in desk.watcher.children_mib():
        print(f"  child {pid} ({name}): peak RSS {mib} MiB")
    for name, (seconds, peak) in desk.timings.items():
        print(f"  {name}: {seconds:.2f} s (daemon peak RSS so far {peak} MiB)")


def check_files(
    directory: Path, before: dict[Path, int], open_files: set[Path]
) -> None:
    """Everything maild wrote is in its storage dir or its database."""
    storage = directory / "var"
    allowed = {directory / n for n in ("maild.toml", "maild.log")}
    for path in snapshot(directory, depth=50):
        if path in allowed or path.name.startswith("maild.db"):
            continue
        assert storage in path.parents, path
    for path in snapshot(storage / "blobs", depth=50):
        assert re.fullmatch(r"[0-9a-f]{64}", path.name), path
    for path in open_files:
        assert directory in path.parents, path
    after = snapshot(*WATCHED)
    changed = {p for p, m in after.items() if before.get(p) != m}
    assert not {p for p in changed if MARKER in str(p) or p.parent == Path("/etc")}
    hits = [
        Path(root) / name
        for place in (ROOT, directory, Path("/tmp"), Path("/etc"))
        for root, dirs, files in os.walk(place)
        if ".git" not in root
        for name in files + dirs
        if MARKER in name
    ]
    assert hits == []


# --- resource bombs ---------------------------------------------------------------


def from_sender(sender: str, raw: bytes, subject: str) -> bytes:
    head = (
        f"From: {sender}\nTo: helpdesk@example.com\nSubject: {subject}\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.example.com>\n"
    ).encode()
    return head + raw.removeprefix(b"From: a@example.com\n")


def normal_mail(sender: str) -> bytes:
    return (
        f"From: {sender}\nTo: helpdesk@example.com\nSubject: Souris HS\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.example.com>\n\n"
        "Ma souris ne fonctionne plus.\n"
    ).encode()


# 50,000 parameters, folded (SMTP lines stay under 1,000 bytes): ~3 s to parse
SLOW = (
    b"From: a@example.com\nContent-Type: text/plain"
    + (b";\n" + b" a=b;" * 100) * 500
    + b"\n\nx"
)
LINES = b"From: a@example.com\n\n" + b"x\n" * 2_000_000

BOMBS = [
    ("100 levels of nesting", nested(100), {"too_deep"}),
    ("2,000 levels of nesting", nested(2000), {"too_many_parts"}),
    ("10,000 parts", many_parts(10_000), {"too_many_parts"}),
    ("100,000 header lines", header_lines(100_000), {"headers_too_large"}),
    ("250 KB of Content-Type parameters", SLOW, {"parse_timeout"}),
]


@pytest.mark.parametrize(("name", "raw", "reasons"), BOMBS, ids=[b[0] for b in BOMBS])
def test_bomb_is_refused_within_budget_and_the_daemon_serves_on(
    desk: Desk, name: str, raw: bytes, reasons: set[str]
) -> None:
    index = [b[0] for b in BOMBS].index(name)
    sender = f"bomb{index}@example.com"
    started = time.monotonic()
    desk.send(from_sender(sender, raw, f"bombe {index}"), sender)
    state, reason, _ = desk.last_mail()
    desk.sink.wait_for(lambda m: sender in m.rcpt_tos, timeout=BUDGET)
    elapsed = desk.timed(name, started)
    assert state == "quarantined"
    assert reason.split(":")[0] in reasons
    (notice,) = desk.notices_to(sender)
    assert notice.message["Subject"] == f"Message non pris en compte : bombe {index}"
    assert elapsed < BUDGET
    after = f"next{index}@example.com"
    desk.send(normal_mail(after), after)
    assert desk.last_mail()[0] == "done"
    desk.sink.wait_for(lambda m: after in m.rcpt_tos, timeout=30)


def test_two_million_short_lines_end_as_a_ticket_or_a_timeout_never_a_stall(
    desk: Desk,
) -> None:
    """6 MB of one-character lines is slow to parse but not malicious in form.

    Whether the worker finishes within parse_seconds depends on the machine
    (it did on CI's, not on ours), so both ends are right: a ticket with its
    confirmation, or a parse_timeout quarantine with its notice. What must hold
    on any machine is one answer within the budget and a daemon that serves on.
    """
    sender = "lines@example.com"
    started = time.monotonic()
    desk.send(from_sender(sender, LINES, "lignes"), sender)
    state, reason, ticket = desk.last_mail()
    desk.sink.wait_for(lambda m: sender in m.rcpt_tos, timeout=BUDGET)
    assert desk.timed("2 M short lines (6 MB)", started) < BUDGET
    (answer,) = desk.notices_to(sender)
    if state == "quarantined":
        assert reason.split(":")[0] in {"parse_timeout", "unparseable"}
        assert answer.message["Subject"] == "Message non pris en compte : lignes"
    else:
        assert (state, ticket is not None) == ("done", True)
        assert "lignes" in answer.message["Subject"]
        assert answer.message["Subject"] != "Message non pris en compte : lignes"
    desk.send(normal_mail("after.lines@example.com"), "after.lines@example.com")
    assert desk.last_mail()[0] == "done"


def test_30_mb_mail_is_answered_552_on_smtp(desk: Desk) -> None:
    body = b"\r\n" + (b"x" * 76 + b"\r\n") * (30 * MIB // 78)
    raw = from_sender("big@example.com", body, "trop gros").replace(b"\n", b"\r\n")
    assert len(raw) > 30 * 10**6
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", desk.intake_port, timeout=60) as client:
        client.ehlo()
        assert client.has_extn("size")
        # announced with SIZE: refused before a byte of it is sent
        with pytest.raises(smtplib.SMTPSenderRefused) as announced:
            client.sendmail("big@example.com", ["helpdesk@example.com"], raw)
        assert announced.value.smtp_code == 552
        # not announced: read to its end, then refused
        client.rset()
        client.mail("big@example.com")
        client.rcpt("helpdesk@example.com")
        code, _ = client.data(raw)
        assert code == 552
    desk.timed("30 MB mail, 552 twice", started)
    desk.send(normal_mail("after.big@example.com"), "after.big@example.com")
    assert desk.last_mail()[0] == "done"


def plant(server: DovecotServer, raw: bytes, announced: int) -> None:
    """Drop raw in the inbox as a maildir file whose name announces its size."""
    new = server.root / "mail" / "example.com" / "helpdesk" / "new"
    new.mkdir(parents=True, exist_ok=True)
    owner = pwd.getpwnam("vmail")
    unique = f"{int(time.time())}.M{uuid.uuid4().hex[:8]}.maild"
    path = new / f"{unique},S={announced},W={announced}"
    path.write_bytes(raw)
    os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chown(new, owner.pw_uid, owner.pw_gid)


def test_1_gb_announced_on_imap_is_refused_without_fetching_it(desk: Desk) -> None:
    sender = "giant@example.com"
    raw = normal_mail(sender).replace(b"Souris HS", b"archive de 1 Go")
    started = time.monotonic()
    plant(desk.server, raw.replace(b"\n", b"\r\n"), 1 << 30)
    desk.sink.wait_for(lambda m: sender in m.rcpt_tos, timeout=BUDGET)
    desk.timed("1 GB announced over IMAP", started)
    state, reason, _ = desk.last_mail()
    assert (state, reason) == ("quarantined", "too_large: 1073741824 bytes")
    (notice,) = desk.notices_to(sender)
    assert notice.message["Subject"] == "Message non pris en compte : archive de 1 Go"
    # the move follows the commit
    wait_until(
        lambda: desk.server.list_uids(HELPDESK, "maild/quarantine"),
        10,
        "the move to the quarantine folder",
    )
    assert desk.server.list_uids(HELPDESK, "INBOX") == []


# --- malformed mail, injection, file names ---------------------------------------

TICKETS = [
    "broken_charset.eml",
    "unknown_charset.eml",
    "raw_8bit_headers.eml",
    "encoded_names.eml",
    "missing_boundary.eml",
    "wrong_boundary.eml",
    "unclosed_multipart.eml",
    "nested_rfc822.eml",
    "uuencode.eml",
    "uuencode_inline.eml",
    "tnef_winmail.eml",
    "headers_only.eml",
    "blank_body.eml",
    "bad_base64.eml",
    "nul_bytes.eml",
    "html_script.eml",
    "injection.eml",
    "hostile_names.eml",
]
QUARANTINED = ["empty.eml", "injection_from.eml"]  # no usable From: outsiders


def test_every_fixture_fits_in_a_list() -> None:
    assert sorted(TICKETS + QUARANTINED) == sorted(
        p.name for p in HOSTILE.glob("*.eml")
    )


@pytest.mark.parametrize("name", TICKETS + QUARANTINED)
def test_malformed_mail_ends_as_a_ticket_or_in_quarantine(
    desk: Desk, name: str
) -> None:
    desk.send((HOSTILE / name).read_bytes())
    state, reason, ticket = desk.last_mail()
    if name in TICKETS:
        assert (state, ticket is not None) == ("done", True), reason
    else:
        assert (state, reason.split(":")[0]) == ("quarantined", "outsider")


def marked_names() -> list[str]:
    return [
        f"../../../../tmp/{MARKER}.txt",
        f"/etc/{MARKER}",
        f"..\\..\\{MARKER}.dll",
        f"{MARKER}\x00.txt",
        f"\u2025\u2215\u2025\u2215{MARKER}",
        MARKER + "x" * 990,
        f"CON.{MARKER}",
    ]


def continued(name: str) -> str:
    """An RFC 2231 filename in continuations: SMTP lines stay short."""
    chunks = [name[i : i + 40] for i in range(0, len(name), 40)]
    charset = ["utf-8''"] + [""] * len(chunks)
    return "".join(
        f";\n filename*{k}*={charset[k]}{quote(chunk, safe='')}"
        for k, chunk in enumerate(chunks)
    )


def test_attachment_names_are_metadata_only(desk: Desk) -> None:
    parts = "".join(
        f"--n\nContent-Type: application/octet-stream\n"
        f"Content-Disposition: attachment{continued(name)}\n\ndata {i}\n"
        for i, name in enumerate(marked_names())
    )
    desk.send(
        (
            "From: Marie <names@example.com>\nTo: helpdesk@example.com\n"
            f"Subject: fichiers {MARKER}\nMessage-ID: <{MARKER}@client.example.com>\n"
            'Content-Type: multipart/mixed; boundary="n"\n\n'
            f"--n\nContent-Type: text/plain\n\nvoir les fichiers\n{parts}--n--\n"
        ).encode(),
        "names@example.com",
    )
    assert desk.last_mail()[0] == "done"
    tickets = desk.maild("tickets", "list", "--json")
    assert isinstance(tickets, list)
    (ticket,) = [t for t in tickets if MARKER in t["subject"]]
    stored = [a["filename"] for a in ticket["attachments"]]
    assert stored == [n.replace("\x00", "") for n in marked_names()]
    for attachment in ticket["attachments"]:
        sha = attachment["sha256"]
        assert (desk.directory / "var" / "blobs" / sha[:2] / sha[2:4] / sha).is_file()


def test_no_mail_maild_sent_carries_injected_headers_or_html(desk: Desk) -> None:
    desk.sink.wait_for(lambda m: "eve@example.com" in m.rcpt_tos, timeout=30)
    assert desk.sink.messages
    for received in desk.sink.messages:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        names = {n.lower() for n in message}
        assert names <= OWN_HEADERS, names - OWN_HEADERS
        for part in message.walk():
            if part.get_content_type() == "text/html":
                html = part.get_content()
                assert "<script" not in html
                assert "<b>body" not in html
        for value in message.values():
            assert not re.search(r"[\r\n\x85\u2028\u2029]", str(value))
