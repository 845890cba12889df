"""has_unread over TLS: a TLS socket with nothing to read says SSLWantReadError,
not BlockingIOError; IDLE must not take it for a lost connection."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from maild.adapters.intake.imap import has_unread


class TinyImapsServer:
    """Just enough IMAP over TLS for IMAPClient to connect: greeting and
    CAPABILITY; then lines are sent when the test says so."""

    def __init__(self, directory: Path) -> None:
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connection: ssl.SSLSocket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        conn = self.context.wrap_socket(raw, server_side=True)
        conn.sendall(b"* OK ready\r\n")
        with conn.makefile("rb") as reader:
            tag = reader.readline().split(b" ", 1)[0]  # the CAPABILITY command
        conn.sendall(b"* CAPABILITY IMAP4rev1 IDLE\r\n" + tag + b" OK done\r\n")
        self.connection = conn
        self.ready.set()

    def send(self, line: bytes) -> None:
        assert self.connection is not None
        self.connection.sendall(line)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.listener.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TinyImapsServer]:
    tiny = TinyImapsServer(tmp_path)
    yield tiny
    tiny.close()


def test_nothing_waiting_on_a_tls_connection_is_no_news(
    server: TinyImapsServer,
) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    client = IMAPClient("127.0.0.1", server.port, ssl=True, ssl_context=context,
                        timeout=5)  # fmt: skip
    client.capabilities()
    assert server.ready.wait(5)
    assert has_unread(client) is False  # raised SSLWantReadError before
    assert client.socket().gettimeout() == 5  # the timeout is given back
    server.send(b"* 1 EXISTS\r\n")
    readable, _, _ = select.select([client.socket()], [], [], 5)
    assert readable, "the server's line did not arrive"
    assert has_unread(client) is True  # a line is there: IDLE must read it
    client.shutdown()
