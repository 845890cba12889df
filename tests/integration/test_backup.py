"""`maild backup` while mail arrives, `maild restore` into a fresh place: the
restored desk lists the tickets the source had at the backup's moment, and
every blob (kept mail, attachment) they name is there."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, run_maild, start_daemon, write_config
from tests.support.desk import Desk
from tests.support.postgres import PostgresServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BURST = 30  # from as many senders: one sender opens at most 20 tickets an hour


def mail_with_attachment(number: int) -> bytes:
    content = base64.b64encode(f"log file {number}\n".encode() * 50).decode()
    return (
        f"From: user{number}@example.com\r\nTo: helpdesk@example.com\r\n"
        f"Subject: Panne {number}\r\nMessage-ID: <b{number}@client.example.com>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nApplication: VPN\r\n\r\nRien.\r\n"
        "--b\r\nContent-Type: text/plain\r\n"
        f'Content-Disposition: attachment; filename="log{number}.txt"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{content}\r\n--b--\r\n"
    ).encode()


def burst(daemon: Daemon) -> None:
    for number in range(BURST):
        daemon.send(mail_with_attachment(number), sender=f"user{number}@example.com")


def test_a_backup_during_a_burst_restores_whole(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    daemon = start_daemon(source, smtp_sink.port)
    backup = tmp_path / "backup"
    try:
        sending = threading.Thread(target=burst, args=(daemon,))
        sending.start()
        wait_until(lambda: len(daemon.maild("tickets", "list", "--json")) >= 5, 60)
        done = run_maild(daemon.config, "backup", str(backup))
        sending.join()
        wait_until(lambda: len(daemon.maild("tickets", "list", "--json")) == BURST, 60)
        final = daemon.maild("tickets", "list", "--json")
    finally:
        assert daemon.stop() == 0
    assert done.returncode == 0, done.stderr

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config, _ = write_config(fresh, sink_port=None)
    restored_run = run_maild(config, "restore", str(backup))
    assert restored_run.returncode == 0, restored_run.stderr
    restored = json.loads(run_maild(config, "tickets", "list", "--json").stdout)
    assert 5 <= len(restored) <= BURST
    assert restored == final[: len(restored)]  # the source at the backup's moment

    blobs = fresh / "var" / "blobs"
    for ticket in restored:
        for attachment in ticket["attachments"]:
            sha = attachment["sha256"]
            kept = blobs / sha[:2] / sha[2:4] / sha
            assert hashlib.sha256(kept.read_bytes()).hexdigest() == sha
    mails = json.loads(run_maild(config, "mails", "list", "--json").stdout)
    for mail in mails:
        shown = json.loads(
            run_maild(config, "mails", "show", str(mail["id"]), "--json").stdout
        )
        assert shown["blob_kept"], shown
        assert shown["blob"].startswith(str(blobs))


def test_the_notifications_kept_without_a_relay_are_backed_up_and_restored(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    daemon = start_daemon(source, None)  # the embedded default: no [smtp]
    kept = source / "var" / "outbox"
    try:
        daemon.send(mail_with_attachment(1), sender="user1@example.com")
        wait_until(lambda: list(kept.glob("*.eml")), 60, "the confirmation kept")
        done = run_maild(daemon.config, "backup", str(tmp_path / "backup"))
    finally:
        assert daemon.stop() == 0
    assert done.returncode == 0, done.stderr
    sent = {p.name: p.read_bytes() for p in kept.glob("*.eml")}
    assert f"{len(sent)} outgoing mails" in done.stdout

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config, _ = write_config(fresh, sink_port=None)
    restored = run_maild(config, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stderr
    back = {p.name: p.read_bytes() for p in (fresh / "var" / "outbox").glob("*.eml")}
    assert back == sent
    assert b"Panne 1" in next(iter(back.values()))


def test_restore_refuses_to_replace_a_desk_and_a_damaged_backup(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    config, _ = write_config(source, sink_port=None)
    replay = source / "mail.eml"
    replay.write_bytes(mail_with_attachment(1))
    assert run_maild(config, "replay", str(replay)).returncode == 0
    backup = tmp_path / "backup"
    assert run_maild(config, "backup", str(backup)).returncode == 0
    again = run_maild(config, "backup", str(backup))
    assert again.returncode == 1
    assert "not empty" in again.stderr

    over = run_maild(config, "restore", str(backup))
    assert over.returncode == 1
    assert "exists" in over.stderr
    assert "--force" in over.stderr

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    other, _ = write_config(fresh, sink_port=None)
    blob = next(p for p in (backup / "blobs").glob("??/??/*"))
    blob.write_bytes(b"damaged")
    damaged = run_maild(other, "restore", str(backup))
    assert damaged.returncode == 1
    assert "does not match its name" in damaged.stderr
    assert not (fresh / "maild.db").exists()  # nothing restored

    forced = run_maild(config, "restore", "--force", str(tmp_path / "nothing"))
    assert forced.returncode == 1
    assert "not a maild backup" in forced.stderr


@pytest.mark.postgres
def test_a_postgresql_desk_backs_up_with_pg_dump_and_restores(
    tmp_path: Path, postgres_server: PostgresServer, fresh_postgres_db: str
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    desk = Desk(source, database_url=fresh_postgres_db)
    try:
        desk.handle(mail_with_attachment(7))
        tickets = desk.tickets()
    finally:
        desk.close()
    backup = tmp_path / "backup"
    done = run_maild(desk.config, "backup", str(backup))
    assert done.returncode == 0, done.stderr
    assert (backup / "maild.pgdump").is_file()

    target = postgres_server.create_database()
    try:
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        config, _ = write_config(fresh, sink_port=None,
                                 database_url=postgres_server.url(target))  # fmt: skip
        restored = run_maild(config, "restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        listed = json.loads(run_maild(config, "tickets", "list", "--json").stdout)
        assert listed == tickets
        sha = listed[0]["attachments"][0]["sha256"]
        assert (fresh / "var" / "blobs" / sha[:2] / sha[2:4] / sha).is_file()
        again = run_maild(config, "restore", str(backup))
        assert again.returncode == 1
        assert "holds tables" in again.stderr
    finally:
        postgres_server.drop_database(target)
