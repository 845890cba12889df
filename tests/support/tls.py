"""Test support: a test CA and server certificates made with `cryptography`. Files.

`make_certificates(dir)` writes a CA, a server certificate it signs for the
name `localhost` only (so that connecting by 127.0.0.1 is a host-name
mismatch), and a second CA that signed nothing the servers use (the wrong
`ca_file`). The `test_ca` fixture makes them once a session.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_NAME = "localhost"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA that signed the servers' certificate (a ca_file)
    other_ca: Path  # a CA that signed nothing in use
    cert: Path  # the server's certificate, for `localhost`, then the CA's
    key: Path  # its private key


def make_certificates(directory: Path) -> Certificates:
    """Write the CA, the other CA and the server's certificate under directory."""
    from tests.support import certificates  # lazy: cryptography, for TLS tests only

    return certificates.make_certificates(directory)


@pytest.fixture(scope="session")
def test_ca() -> Iterator[Certificates]:
    """A test CA and a server certificate for `localhost`, once a session."""
    directory = Path(tempfile.mkdtemp(prefix="maild-ca-"))
    directory.chmod(0o755)
    try:
        yield make_certificates(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
