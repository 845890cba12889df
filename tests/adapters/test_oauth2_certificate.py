"""Client credentials with a certificate instead of a secret: the grant it
means, the thumbprints that name it, and each wrong setting named by its key.
Reads the key and certificate files the tests write (I/O: not in tests/unit)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from maild.config import parse_settings
from maild.core.oauth2 import Grant, certificate_thumbprints, choose_grant, explain
from maild.errors import ConfigError
from tests.support.token_endpoint import ClientCertificate, make_client_certificate

MINIMAL = {
    "accepted_domains": ["example.com"],
    "incident_address": "helpdesk@example.com",
    "pool_address": "pool@example.com",
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    # 1024 bits: made in milliseconds; the configuration only reads it
    return make_client_certificate(
        tmp_path_factory.mktemp("certificate"), key_size=1024
    )


def test_a_certificate_alone_means_client_credentials() -> None:
    chosen = choose_grant(has_secret=False, has_refresh_token=False,
                          has_command=False, has_certificate=True)  # fmt: skip
    assert chosen is Grant.CLIENT_CREDENTIALS


def test_the_thumbprints_are_the_certificates_hashes_base64url() -> None:
    der = b"\x30\x82 a certificate"
    headers = certificate_thumbprints(der)
    sha1 = base64.urlsafe_b64decode(headers["x5t"] + "=")
    assert sha1 == hashlib.sha1(der).digest()  # noqa: S324
    assert base64.urlsafe_b64decode(headers["x5t#S256"] + "=") == (
        hashlib.sha256(der).digest()
    )
    assert "=" not in headers["x5t"] + headers["x5t#S256"]


def test_a_refused_certificate_is_explained() -> None:
    hint = explain("invalid_client", "AADSTS700027: Client assertion contains an "
                   "invalid signature. [Reason - The key was not found.]")  # fmt: skip
    assert "client_certificate_file" in hint


def _oauth2(base: Path, **keys: str) -> object:
    table = {"username": "helpdesk@example.com", "auth": "oauth2", "oauth2": {
        "provider": "microsoft", "tenant": "contoso.onmicrosoft.com",
        "client_id": "abc", **keys}}  # fmt: skip
    raw = {"helpdesk": MINIMAL, "imap": table}
    return parse_settings(raw, base, base / "maild.toml")


@pytest.mark.parametrize(
    "keys",
    [
        {"client_certificate_file": "maild.pem"},  # certificate then key, one file
        {"client_certificate_file": "maild.crt", "client_key_file": "maild.key"},
    ],
)
def test_a_certificate_login_is_read(
    certificate: ClientCertificate, keys: dict[str, str]
) -> None:
    settings = _oauth2(certificate.cert.parent, **keys)
    oauth2 = settings.imap.oauth2  # type: ignore[attr-defined]
    assert oauth2.grant is Grant.CLIENT_CREDENTIALS
    assert oauth2.client_secret == ""
    assert oauth2.client_certificate == certificate.der
    assert "PRIVATE KEY" in oauth2.client_key
    assert "PRIVATE" not in repr(settings)


def _write(base: Path, name: str, data: bytes) -> str:
    (base / name).write_bytes(data)
    return name


def _other_key(kind: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())  # fast; not RSA
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(b"pass")
        if kind == "encrypted"
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8, encryption)  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "files", "key"),
    [
        (
            {"client_certificate_file": "maild.pem", "client_secret_file": "secret"},
            {},
            "imap.oauth2.client_certificate_file",
        ),
        (
            {"client_key_file": "maild.key", "client_secret_file": "secret"},
            {},
            "imap.oauth2.client_key_file",
        ),
        (
            {"client_certificate_file": "maild.pem", "refresh_token_file": "secret"},
            {},
            "imap.oauth2.client_certificate_file",
        ),
        (
            {"client_certificate_file": "maild.pem", "token_command": "x"},
            {},
            "imap.oauth2.token_command",
        ),
        (
            {"client_certificate_file": "missing.pem"},
            {},
            "imap.oauth2.client_certificate_file",
        ),
        (
            {"client_certificate_file": "secret"},  # no PEM
            {},
            "imap.oauth2.client_certificate_file",
        ),
        (
            {"client_certificate_file": "maild.crt"},  # no key beside it
            {},
            "imap.oauth2.client_certificate_file",
        ),
        (
            {"client_certificate_file": "maild.crt", "client_key_file": "missing.key"},
            {},
            "imap.oauth2.client_key_file",
        ),
        (
            {"client_certificate_file": "maild.crt", "client_key_file": "maild.crt"},
            {},
            "imap.oauth2.client_key_file",
        ),  # the certificate, not a key
        (
            {"client_certificate_file": "maild.crt", "client_key_file": "ec.key"},
            {"ec.key": "plain"},
            "imap.oauth2.client_key_file",
        ),  # not RSA
        (
            {"client_certificate_file": "maild.crt", "client_key_file": "enc.key"},
            {"enc.key": "encrypted"},
            "imap.oauth2.client_key_file",
        ),
        (
            {"client_certificate_file": "maild.crt", "client_key_file": "other.key"},
            {"other.key": "rsa"},
            "imap.oauth2.client_key_file",
        ),  # another RSA key
    ],
)
def test_a_wrong_certificate_setting_names_its_key(
    certificate: ClientCertificate,
    tmp_path: Path,
    keys: dict[str, str],
    files: dict[str, str],
    key: str,
) -> None:
    for name in ("maild.pem", "maild.crt", "maild.key"):
        _write(tmp_path, name, (certificate.cert.parent / name).read_bytes())
    _write(tmp_path, "secret", b"app-secret\n")
    for name, kind in files.items():
        data = (
            _rsa_key_of_another_certificate(certificate)
            if kind == "rsa"
            else _other_key(kind)
        )
        _write(tmp_path, name, data)
    with pytest.raises(ConfigError) as caught:
        _oauth2(tmp_path, **keys)
    assert caught.value.key == key
    assert "PRIVATE KEY-----\n" not in str(caught.value)


def _rsa_key_of_another_certificate(certificate: ClientCertificate) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - fast, only compared
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip
