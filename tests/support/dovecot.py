"""Test support: private Dovecot servers for the IMAP tests. Does I/O.

`dovecot` is a session-scoped server from tests/integration/dovecot/; the
factory `dovecot_server` starts variants (without IDLE, without MOVE, another
hierarchy separator) from the same template, once per session each;
`dovecot_tls` serves STARTTLS and implicit TLS with a certificate of the test
CA, `dovecot_oauth2` takes XOAUTH2 logins with JWTs of a TokenEndpoint. Every
server lives in its own temp dir on a free 127.0.0.1 port and is stopped by
the PID in its master.pid. Needs root (mail belongs to the `vmail` user).
"""

from __future__ import annotations

import base64
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import pytest
from imapclient import IMAPClient

from maild.config import ImapSettings
from tests.support import token_endpoint
from tests.support.tls import Certificates
from tests.support.waiting import wait_until

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
TEMPLATE = Path(__file__).parents[1] / "integration" / "dovecot" / "dovecot.conf.tmpl"
MAIL_USER = "vmail"
USERS = {"helpdesk@example.com": "secret", "other@example.com": "other-secret"}
HELPDESK = "helpdesk@example.com"
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


@dataclass
class DovecotServer:
    """One running private Dovecot and helpers that speak IMAP to it."""

    name: str
    root: Path
    host: str
    port: int
    separator: str
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    imaps_port: int = 0  # implicit TLS, when started with certificates

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def connect(self, user: str = HELPDESK) -> IMAPClient:
        """Open a logged-in plain IMAP connection for user."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(user, self.users[user])
        return client

    def config_section(self, user: str = HELPDESK, poll_seconds: int = 60) -> str:
        """The [imap] section of a maild configuration for this server."""
        return (
            f'\n[imap]\nhost = "{self.host}"\nport = {self.port}\ntls = false\n'
            f'username = "{user}"\npassword = "{self.users[user]}"\n'
            f"poll_seconds = {poll_seconds}\n"
        )

    def settings(self, user: str = HELPDESK, **overrides: object) -> ImapSettings:
        """Return ImapSettings that point maild at this server."""
        values: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "tls": False,
            "username": user,
            "password": self.users[user],
            "inbox": "INBOX",
            "done_folder": "maild/done",
            "quarantine_folder": "maild/quarantine",
            "poll_seconds": 60,
        }
        values.update(overrides)
        return ImapSettings(**values)  # type: ignore[arg-type]

    def append(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        flags: tuple[bytes, ...] = (),
    ) -> int:
        """Append raw to folder and return its UID."""
        with self.connect(user) as client:
            answer = client.append(folder, raw, flags=flags)
        match = _APPENDUID.search(answer)
        assert match, answer
        return int(match.group(1))

    def list_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """Return the UIDs in folder, in order; [] when it does not exist."""
        with self.connect(user) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))

    def fetch_all(
        self, user: str, folder: str = "INBOX"
    ) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
        """Return {uid: (raw, flags)} of folder without setting \\Seen."""
        with self.connect(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return {}
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        return {uid: (item[b"BODY[]"], item[b"FLAGS"]) for uid, item in data.items()}

    def folders(self, user: str = HELPDESK) -> list[str]:
        """Return every folder name of user."""
        with self.connect(user) as client:
            return [name for _flags, _sep, name in client.list_folders()]

    def fresh_mailbox(self, user: str = HELPDESK) -> None:
        """Empty the INBOX and delete every other folder of user."""
        with self.connect(user) as client:
            names = [name for _f, _s, name in client.list_folders()]
            for name in sorted(names, key=len, reverse=True):  # children first
                if name.upper() != "INBOX":
                    client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def kick(self, user: str = HELPDESK) -> bool:
        """Disconnect every IMAP session of user, as an admin would; False when
        user had none (doveadm's exit 68), e.g. between two logins."""
        done = subprocess.run(
            [str(DOVEADM), "-c", str(self.config), "kick", user],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode == 68:
            return False
        done.check_returncode()
        return True

    def kill_sessions(self, user: str = HELPDESK) -> list[int]:
        """SIGKILL the imap processes serving user: a crash, no BYE sent."""
        who = subprocess.run(
            [str(DOVEADM), "-c", str(self.config), "who", "-1", user],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
        pids = [int(line.split()[2]) for line in who.stdout.splitlines()[1:]]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_binary() -> None:
    if DOVECOT.exists():
        return
    message = f"{DOVECOT} is missing: apt-get install dovecot-imapd"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _mail_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                MAIL_USER,
            ],
            check=True,
        )
        return pwd.getpwnam(MAIL_USER)


_OAUTH2_PASSDB = """passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %s/dovecot-oauth2.conf.ext
}"""
# Local validation: the key of a JWT with no azp and no kid is read from
# <prefix>default/<alg>/default, base64-encoded (Dovecot's lib-oauth2).
_OAUTH2_EXT = """introspection_mode = local
local_validation_key_dict = fs:posix:prefix=%s/keys/
username_attribute = sub
"""


def _write_oauth2(root: Path, key: bytes) -> str:
    folder = root / "keys" / "default" / "HS256"
    folder.mkdir(parents=True)
    for path in (root / "keys", root / "keys" / "default", folder):
        path.chmod(0o755)
    (folder / "default").write_text(base64.b64encode(key).decode())
    (folder / "default").chmod(0o644)
    (root / "dovecot-oauth2.conf.ext").write_text(_OAUTH2_EXT % root)
    (root / "dovecot-oauth2.conf.ext").chmod(0o644)
    return _OAUTH2_PASSDB % root


def _write_config(
    root: Path,
    name: str,
    port: int,
    separator: str,
    capability: str,
    *,
    imaps_port: int = 0,
    tls: Certificates | None = None,
    oauth2_key: bytes | None = None,
) -> None:
    owner = _mail_user()
    mail = root / "mail"
    mail.mkdir()
    os.chown(mail, owner.pw_uid, owner.pw_gid)
    users = root / "users"
    users.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in USERS.items()))
    users.chmod(0o644)
    text = Template(TEMPLATE.read_text()).substitute(
        root=root,
        port=port,
        name=name,
        separator=separator,
        uid=owner.pw_uid,
        gid=owner.pw_gid,
        capability=f"imap_capability = {capability}" if capability else "",
        ssl=f"ssl = yes\nssl_cert = <{tls.cert}\nssl_key = <{tls.key}"
        if tls
        else "ssl = no",
        imaps_port=imaps_port,
        mechanisms="plain login xoauth2 oauthbearer" if oauth2_key else "plain login",
        oauth2_passdb=_write_oauth2(root, oauth2_key) if oauth2_key else "",
    )
    (root / "dovecot.conf").write_text(text)


def _accepts(server: DovecotServer) -> bool:
    """Tell whether server accepts a connection on its port."""
    try:
        with socket.create_connection((server.host, server.port), timeout=1):
            return True
    except OSError:
        return False


def _wait_for_port(server: DovecotServer, timeout: float) -> None:
    try:
        wait_until(lambda: _accepts(server), timeout, f"dovecot {server.name}'s port")
    except TimeoutError:
        pytest.fail(f"dovecot {server.name} did not listen:\n{server.log()}")


def start_dovecot(
    name: str,
    separator: str = "/",
    capability: str = "",
    *,
    tls: Certificates | None = None,
    oauth2_key: bytes | None = None,
) -> DovecotServer:
    """Start a private Dovecot; capability replaces the IMAP capability list;
    tls adds STARTTLS and an imaps port; oauth2_key, XOAUTH2 with JWTs signed
    by that HS256 key."""
    _require_binary()
    root = Path(tempfile.mkdtemp(prefix=f"maild-dovecot-{name}-"))
    root.chmod(0o755)  # the auth process runs as `dovecot` and reads users
    server = DovecotServer(name, root, "127.0.0.1", free_port(), separator)
    if tls is not None:
        server.imaps_port = free_port()
    _write_config(
        root, name, server.port, separator, capability,
        imaps_port=server.imaps_port, tls=tls, oauth2_key=oauth2_key,
    )  # fmt: skip
    output = root / "start.out"  # not a pipe: the daemon would hold it open
    for args in (["-n"], []):  # validate, then start (it daemonises)
        with output.open("w") as out:
            done = subprocess.run(
                [str(DOVECOT), "-c", str(server.config), *args],
                stdout=out,
                stderr=out,
                check=False,
                timeout=30,
            )
        if done.returncode != 0:
            pytest.fail(f"dovecot {args} failed: {output.read_text()}\n{server.log()}")
    _wait_for_port(server, 10)
    return server


def stop_dovecot(*servers: DovecotServer) -> None:
    """Stop servers by the PIDs in their master.pid, wait, remove their files."""
    pids: list[tuple[DovecotServer, int]] = []
    for server in servers:
        pid_file = server.root / "run" / "master.pid"
        if pid_file.exists():
            pids.append((server, int(pid_file.read_text().split()[0])))
            os.kill(pids[-1][1], signal.SIGTERM)  # all at once: each takes 1-3 s
    try:
        wait_until(lambda: not any(_is_alive(pid) for _, pid in pids), 15, "stop")
    except TimeoutError:
        for server, pid in pids:
            if _is_alive(pid):
                print(server.log())
                pytest.fail(f"dovecot {server.name} (pid {pid}) did not stop")
    for server in servers:
        shutil.rmtree(server.root, ignore_errors=True)


def _is_alive(pid: int) -> bool:
    """Tell whether pid still runs; a zombie waiting for init to reap it does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def capabilities(server: DovecotServer) -> tuple[str, ...]:
    """Return the post-login CAPABILITY list of server."""
    with server.connect() as client:
        return tuple(cap.decode() for cap in client.capabilities())


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot with its default capabilities, separator "/"."""
    server = start_dovecot("main")
    yield server
    stop_dovecot(server)


DovecotFactory = Callable[..., DovecotServer]


@pytest.fixture(scope="session")
def dovecot_server(dovecot: DovecotServer) -> Iterator[DovecotFactory]:
    """Start (once per session) a Dovecot without some capabilities.

    Call it as dovecot_server(without=("IDLE",), separator=".").
    """
    default = capabilities(dovecot)
    started: dict[tuple[tuple[str, ...], str], DovecotServer] = {}

    def make(without: tuple[str, ...] = (), separator: str = "/") -> DovecotServer:
        key = (tuple(sorted(without)), separator)
        if key not in started:
            kept = " ".join(c for c in default if c not in without)
            name = "-".join(("no", *key[0])).lower() if without else "sep"
            started[key] = start_dovecot(name, separator, kept if without else "")
        return started[key]

    yield make
    stop_dovecot(*started.values())


@pytest.fixture(scope="session")
def dovecot_no_idle(dovecot_server: DovecotFactory) -> DovecotServer:
    """A private Dovecot that does not announce IDLE: maild must poll."""
    return dovecot_server(without=("IDLE",))


@pytest.fixture
def clean_mailbox(dovecot: DovecotServer) -> DovecotServer:
    """The session's Dovecot with the helpdesk mailbox emptied for this test."""
    dovecot.fresh_mailbox(HELPDESK)
    return dovecot


@pytest.fixture(scope="session")
def dovecot_tls(test_ca: Certificates) -> Iterator[DovecotServer]:
    """A private Dovecot with STARTTLS on .port and implicit TLS on .imaps_port,
    its certificate (for `localhost`) signed by the test CA."""
    server = start_dovecot("tls", tls=test_ca)
    yield server
    stop_dovecot(server)


@pytest.fixture(scope="session")
def dovecot_oauth2() -> Iterator[DovecotServer]:
    """A private Dovecot whose XOAUTH2 logins take the JWTs of TokenEndpoint
    (validated locally, HS256); passwords still work for the tests' helpers."""
    server = start_dovecot("oauth2", oauth2_key=token_endpoint.KEY)
    yield server
    stop_dovecot(server)
