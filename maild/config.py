"""Configuration: one TOML file read once into frozen settings. Reads files and env.

Every key of SPEC's configuration section is known here; an unknown key, a
missing required key or a value of the wrong shape raises ConfigError naming
the key, so the daemon stops at start with one line an admin can act on.
"""

from __future__ import annotations

import os
import re
import shlex
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maild.core.addresses import is_plain_mailbox
from maild.core.oauth2 import (
    Endpoint,
    EndpointProblem,
    Grant,
    Provider,
    choose_grant,
    endpoint,
)
from maild.core.retention import Policy
from maild.core.sla import BusinessCalendar
from maild.domain import SlaPolicy, Urgency
from maild.errors import ConfigError

ENV_VAR = "MAILD_CONFIG"
LOG_LEVEL_VAR = "MAILD_LOG_LEVEL"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_OAUTH2_KEYS = (
    "provider",
    "tenant",
    "client_id",
    "client_secret_file",
    "client_certificate_file",  # the client credentials' certificate (PEM)
    "client_key_file",  # its private key, when not in client_certificate_file
    "refresh_token_file",
    "token_command",
    "token_url",
    "scope",
)


@dataclass(frozen=True, slots=True)
class HelpdeskSettings:
    tag: str
    language: str
    accepted_domains: tuple[str, ...]
    incident_address: str
    request_address: str
    pool_address: str
    technicians: tuple[str, ...]
    supervisors: tuple[str, ...]
    name: str = ""  # how notifications name the desk; "": the templates' words


class AuthMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 - the method's name, no secret
    OAUTH2 = "oauth2"  # SASL XOAUTH2 with a token from [imap.oauth2]/[smtp.oauth2]


@dataclass(frozen=True, slots=True)
class OAuth2Settings:
    """Where a login gets its access token; see maild.adapters.oauth2."""

    section: str  # "imap.oauth2" or "smtp.oauth2": how messages name the keys
    provider: Provider
    grant: Grant
    endpoint: Endpoint
    client_id: str = ""
    client_secret: str = field(default="", repr=False)  # from client_secret_file
    # From client_certificate_file (+ client_key_file): the RSA private key
    # (PEM, PKCS#8) that signs the client assertion, and the certificate (DER)
    # whose thumbprint names it; client credentials without a secret.
    client_key: str = field(default="", repr=False)
    client_certificate: bytes = field(default=b"", repr=False)
    refresh_token_file: Path | None = None  # read, and rewritten when rotated
    token_command: str = ""  # run by /bin/sh, as mutt and msmtp run theirs


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    inbox: str
    done_folder: str
    quarantine_folder: str
    poll_seconds: int
    starttls: bool = False  # with tls = false: STARTTLS before the login
    ca_file: Path | None = None  # CAs trusted beside the system's
    auth: AuthMethod = AuthMethod.PASSWORD
    oauth2: OAuth2Settings | None = None  # with auth = "oauth2"


@dataclass(frozen=True, slots=True)
class SmtpIntakeSettings:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    username: str
    password: str
    from_address: str
    ca_file: Path | None = None  # CAs trusted beside the system's
    auth: AuthMethod = AuthMethod.PASSWORD
    oauth2: OAuth2Settings | None = None  # with auth = "oauth2"


@dataclass(frozen=True, slots=True)
class Limits:
    max_mail_bytes: int = 26214400
    max_attachment_bytes: int = 20971520
    max_parts: int = 500
    max_mime_depth: int = 20
    max_header_bytes: int = 262144
    parse_seconds: int = 10
    auto_answers_per_hour: int = 5
    auto_answers_per_day: int = 20
    handling_attempts: int = 3
    ticket_answers_per_10_minutes: int = 10
    ticket_answers_per_hour: int = 25
    new_tickets_per_hour: int = 20  # per sender outside the staff


@dataclass(frozen=True, slots=True)
class Retention:
    rate_days_after_close: int = 30  # RATE still accepted this long after closure
    mail_days_after_close: int = 365  # raw mails and attachments of closed tickets
    quarantine_days: int = 30  # quarantined and ignored mails

    @property
    def policy(self) -> Policy:
        """What the purge needs of it (core/retention.py)."""
        return Policy(self.mail_days_after_close, self.quarantine_days)


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"  # one object a line, for journald and Loki


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: LogLevel = LogLevel.INFO  # maild's own lines
    format: LogFormat = LogFormat.TEXT
    libraries: LogLevel = LogLevel.WARNING  # every other library's


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    host: str = "127.0.0.1"
    port: int = 9187


@dataclass(frozen=True, slots=True)
class ServiceManager:
    """What systemd tells a service it starts (sd_notify(3)); empty outside it."""

    notify_socket: str = ""  # NOTIFY_SOCKET: where READY, STATUS, WATCHDOG go
    watchdog_seconds: float = 0.0  # WATCHDOG_USEC: 0, no watchdog


def service_manager() -> ServiceManager:
    """Read NOTIFY_SOCKET and WATCHDOG_USEC (for this process, WATCHDOG_PID)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    for_pid = os.environ.get("WATCHDOG_PID", "")
    is_ours = not for_pid or for_pid == str(os.getpid())
    return ServiceManager(
        notify_socket=os.environ.get("NOTIFY_SOCKET", ""),
        watchdog_seconds=int(usec) / 1e6 if usec.isdigit() and is_ours else 0.0,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    path: Path
    helpdesk: HelpdeskSettings
    imap: ImapSettings | None
    smtp_intake: SmtpIntakeSettings | None
    smtp: SmtpSettings | None
    database_url: str
    storage_dir: Path
    sla: SlaPolicy
    limits: Limits
    trusted_authserv_ids: tuple[str, ...]
    retention: Retention
    from_address: str  # From of everything maild sends
    templates_dir: Path | None = None  # [templates] dir: the operator's templates
    log: LogSettings = LogSettings()  # [log]; the level as with_log_level resolves it
    metrics: MetricsSettings | None = None  # [metrics]; absent: no endpoint
    # [database] lease_seconds: how long a silent instance keeps the imap and
    # sla roles before another takes them (PostgreSQL, several instances)
    lease_seconds: int = 6

    @property
    def eml_dir(self) -> Path:
        """Where outgoing mail is kept as .eml files when no [smtp] relay is set."""
        return self.storage_dir / "outbox"


def config_path(cli_value: str | None) -> Path:
    """Pick the configuration file: --config, else MAILD_CONFIG, else ./maild.toml."""
    if cli_value:
        return Path(cli_value)
    return Path(os.environ.get(ENV_VAR) or "maild.toml")


def with_log_level(settings: Settings, cli_value: str | None) -> Settings:
    """Settings whose log level is --log-level, else MAILD_LOG_LEVEL, else [log]'s."""
    env = os.environ.get(LOG_LEVEL_VAR)
    if cli_value:
        value, given = cli_value, f"--log-level {cli_value!r}"
    elif env:
        value, given = env, f"{LOG_LEVEL_VAR}={env!r}"
    else:
        return settings
    level = _log_level(value, "log.level", given)
    return replace(settings, log=replace(settings.log, level=level))


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file at path."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config", f"no configuration file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return parse_settings(raw, path.resolve().parent, path)


def parse_settings(raw: Mapping[str, Any], base: Path, path: Path) -> Settings:
    """Turn the TOML tables into Settings; base resolves relative paths."""
    _only(
        raw,
        "",
        {
            "helpdesk",
            "imap",
            "smtp_intake",
            "smtp",
            "database",
            "storage",
            "sla",
            "limits",
            "security",
            "retention",
            "templates",
            "log",
            "metrics",
        },
    )
    helpdesk = _helpdesk(_table(raw, "helpdesk", required=True))
    smtp = _smtp(_table(raw, "smtp"), base) if "smtp" in raw else None
    database = _table(raw, "database")
    _only(database, "database", {"url", "lease_seconds"})
    storage = _table(raw, "storage")
    _only(storage, "storage", {"dir"})
    security = _table(raw, "security")
    _only(security, "security", {"trusted_authserv_ids"})
    return Settings(
        path=path,
        helpdesk=helpdesk,
        imap=_imap(_table(raw, "imap"), base) if "imap" in raw else None,
        smtp_intake=_intake(_table(raw, "smtp_intake"))
        if "smtp_intake" in raw
        else None,
        smtp=smtp,
        database_url=_database_url(
            _str(database, "database.url", "sqlite:///maild.db"), base
        ),
        storage_dir=base / _str(storage, "storage.dir", "var"),
        sla=_sla(_table(raw, "sla")),
        limits=_limits(_table(raw, "limits")),
        trusted_authserv_ids=_authserv_ids(security),
        retention=_retention(_table(raw, "retention")),
        from_address=smtp.from_address if smtp else helpdesk.incident_address,
        templates_dir=_templates_dir(_table(raw, "templates"), base),
        log=_log(_table(raw, "log")),
        metrics=_metrics(_table(raw, "metrics")) if "metrics" in raw else None,
        lease_seconds=_int(database, "database.lease_seconds", 6, 3, 300),
    )


def _helpdesk(t: Mapping[str, Any]) -> HelpdeskSettings:
    _only(
        t,
        "helpdesk",
        {
            "tag",
            "language",
            "accepted_domains",
            "incident_address",
            "request_address",
            "pool_address",
            "technicians",
            "supervisors",
            "name",
        },
    )
    tag = _str(t, "helpdesk.tag", "HD")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", tag):
        raise ConfigError("helpdesk.tag", "letters, digits, - and _ only, 1-16")
    language = _str(t, "helpdesk.language", "fr")
    if language not in ("fr", "en"):
        raise ConfigError("helpdesk.language", "must be fr or en")
    domains = _strs(t, "helpdesk.accepted_domains", None)
    if not domains:
        raise ConfigError("helpdesk.accepted_domains", "name at least one domain")
    incident = _address(t, "helpdesk.incident_address", None)
    return HelpdeskSettings(
        tag=tag,
        language=language,
        accepted_domains=tuple(d.lower() for d in domains),
        incident_address=incident,
        request_address=_address(t, "helpdesk.request_address", incident),
        pool_address=_address(t, "helpdesk.pool_address", None),
        technicians=tuple(
            _addr(a, "helpdesk.technicians")
            for a in _strs(t, "helpdesk.technicians", ())
        ),
        supervisors=tuple(
            _addr(a, "helpdesk.supervisors")
            for a in _strs(t, "helpdesk.supervisors", ())
        ),
        name=_desk_name(t),
    )


def _desk_name(t: Mapping[str, Any]) -> str:
    """The desk's name: signature and From display name; one printable line."""
    name = _str(t, "helpdesk.name", "").strip()
    if not name.isprintable() or len(name) > 100:
        raise ConfigError(
            "helpdesk.name", "one line of at most 100 printable characters"
        )
    return name


def _templates_dir(t: Mapping[str, Any], base: Path) -> Path | None:
    """The operator's template folder; checked where templates are loaded, so
    that `maild templates export` can create it."""
    _only(t, "templates", {"dir"})
    folder = _str(t, "templates.dir", "")
    return base / folder if folder else None


def _imap(t: Mapping[str, Any], base: Path) -> ImapSettings:
    _only(
        t,
        "imap",
        {
            "host",
            "port",
            "tls",
            "username",
            "password",
            "password_file",
            "inbox",
            "done_folder",
            "quarantine_folder",
            "poll_seconds",
            "starttls",
            "ca_file",
            "auth",
            "oauth2",
        },
    )
    tls = _bool(t, "imap.tls", True)
    starttls = _bool(t, "imap.starttls", False)
    if tls and starttls:
        raise ConfigError(
            "imap.starttls", "tls = true is TLS from the start; for STARTTLS set "
            "tls = false and starttls = true"
        )  # fmt: skip
    auth, oauth2 = _login(t, "imap", base)
    return ImapSettings(
        host=_str(t, "imap.host", "127.0.0.1"),
        port=_int(t, "imap.port", 993 if tls else 143, 1, 65535),
        tls=tls,
        username=_str(t, "imap.username", None),
        password=_secret(t, "imap", base),
        inbox=_str(t, "imap.inbox", "INBOX"),
        done_folder=_str(t, "imap.done_folder", "maild/done"),
        quarantine_folder=_str(t, "imap.quarantine_folder", "maild/quarantine"),
        poll_seconds=_int(t, "imap.poll_seconds", 60, 1, 86400),
        starttls=starttls,
        ca_file=_ca_file(t, "imap", base),
        auth=auth,
        oauth2=oauth2,
    )


def _metrics(t: Mapping[str, Any]) -> MetricsSettings:
    _only(t, "metrics", {"listen"})
    host, port = _listen(_str(t, "metrics.listen", "127.0.0.1:9187"), "metrics.listen")
    return MetricsSettings(host=host, port=port)


def _listen(listen: str, name: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(name, "must be HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _intake(t: Mapping[str, Any]) -> SmtpIntakeSettings:
    _only(t, "smtp_intake", {"listen"})
    listen = _str(t, "smtp_intake.listen", "127.0.0.1:2525")
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("smtp_intake.listen", "must be HOST:PORT")
    return SmtpIntakeSettings(host=host.strip("[]") or "127.0.0.1", port=int(port))


def _smtp(t: Mapping[str, Any], base: Path) -> SmtpSettings:
    _only(
        t,
        "smtp",
        {
            "host",
            "port",
            "starttls",
            "username",
            "password",
            "password_file",
            "from_address",
            "ca_file",
            "auth",
            "oauth2",
        },
    )
    auth, oauth2 = _login(t, "smtp", base)
    username = _str(t, "smtp.username", "")
    if auth is AuthMethod.OAUTH2 and not username:
        raise ConfigError(
            "smtp.username", 'the mailbox to send as, with auth = "oauth2"'
        )
    return SmtpSettings(
        host=_str(t, "smtp.host", "127.0.0.1"),
        port=_int(t, "smtp.port", 25, 1, 65535),
        starttls=_bool(t, "smtp.starttls", False),
        username=username,
        password=_secret(t, "smtp", base),
        from_address=_address(t, "smtp.from_address", None),
        ca_file=_ca_file(t, "smtp", base),
        auth=auth,
        oauth2=oauth2,
    )


def _ca_file(t: Mapping[str, Any], section: str, base: Path) -> Path | None:
    """The extra CA bundle, checked now: a wrong one would refuse every login."""
    name = f"{section}.ca_file"
    value = _str(t, name, "")
    if not value:
        return None
    path = base / value
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except FileNotFoundError:
        raise ConfigError(name, f"no file at {path}") from None
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from None
    except ssl.SSLError:
        raise ConfigError(name, f"{path} holds no PEM certificate") from None
    return path


def _login(
    t: Mapping[str, Any], section: str, base: Path
) -> tuple[AuthMethod, OAuth2Settings | None]:
    """The login method of [imap] or [smtp], and its token source's settings."""
    text = _str(t, f"{section}.auth", AuthMethod.PASSWORD)
    try:
        auth = AuthMethod(text)
    except ValueError:
        raise ConfigError(
            f"{section}.auth", f"{text!r} is not password or oauth2"
        ) from None
    if auth is AuthMethod.PASSWORD:
        if "oauth2" in t:
            raise ConfigError(f"{section}.oauth2", 'used only with auth = "oauth2"')
        return auth, None
    for key in ("password", "password_file"):
        if key in t:
            raise ConfigError(f"{section}.{key}", 'not used with auth = "oauth2"')
    if "oauth2" not in t:
        raise ConfigError(f"{section}.oauth2", 'missing: auth = "oauth2" needs it')
    return auth, _oauth2(_table(t, "oauth2"), f"{section}.oauth2", base)


def _oauth2(t: Mapping[str, Any], section: str, base: Path) -> OAuth2Settings:
    _only(t, section, set(_OAUTH2_KEYS))
    text = _str(t, f"{section}.provider", None)
    try:
        provider = Provider(text)
    except ValueError:
        raise ConfigError(
            f"{section}.provider", f"{text!r} is not microsoft, google or custom"
        ) from None
    command = _str(t, f"{section}.token_command", "").strip()
    secret_file = _str(t, f"{section}.client_secret_file", "")
    certificate_file = _str(t, f"{section}.client_certificate_file", "")
    key_file = _str(t, f"{section}.client_key_file", "")
    refresh_file = _str(t, f"{section}.refresh_token_file", "")
    grant = choose_grant(has_secret=bool(secret_file),
                         has_refresh_token=bool(refresh_file),
                         has_command=bool(command),
                         has_certificate=bool(certificate_file))  # fmt: skip
    if grant is None:
        raise ConfigError(
            f"{section}.client_secret_file",
            "name client_secret_file or client_certificate_file (client "
            "credentials), refresh_token_file or token_command",
        )
    if command and (secret_file or refresh_file or certificate_file):
        raise ConfigError(f"{section}.token_command",
                          "alone: the command's token is used as it is")  # fmt: skip
    if key_file and not certificate_file:
        raise ConfigError(f"{section}.client_key_file",
                          "used only with client_certificate_file")  # fmt: skip
    if certificate_file and refresh_file:
        raise ConfigError(f"{section}.client_certificate_file",
                          "used by the client-credentials grant only, "
                          "not with refresh_token_file")  # fmt: skip
    if certificate_file and secret_file:
        raise ConfigError(f"{section}.client_certificate_file",
                          "one of client_secret_file and client_certificate_file, "
                          "not both")  # fmt: skip
    if command:
        try:
            shlex.split(command)  # what /bin/sh will parse: catch an open quote
        except ValueError as exc:
            raise ConfigError(f"{section}.token_command", str(exc)) from None
    client_id = _str(t, f"{section}.client_id", "").strip()
    if grant is not Grant.COMMAND and not client_id:
        raise ConfigError(f"{section}.client_id", f"required by the {grant} grant")
    where = Endpoint("", "")  # the command knows where it gets its token
    if grant is not Grant.COMMAND:
        where = _endpoint(t, section, provider)
    if grant is not Grant.COMMAND and not where.token_url.startswith(
        ("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")
    ):
        raise ConfigError(f"{section}.token_url",
                          "must be https:// (plain http on loopback only)")  # fmt: skip
    refresh_path = base / refresh_file if refresh_file else None
    if refresh_path is not None:
        _read_secret(refresh_path, f"{section}.refresh_token_file")
    key, certificate = "", b""
    if certificate_file:
        key, certificate = read_client_certificate(base, section, certificate_file,
                                               key_file)  # fmt: skip
    return OAuth2Settings(
        section=section,
        provider=provider,
        grant=grant,
        endpoint=where,
        client_id=client_id,
        client_secret=_read_secret(base / secret_file,
                                   f"{section}.client_secret_file")
        if secret_file
        else "",
        refresh_token_file=refresh_path,
        token_command=command,
        client_key=key,
        client_certificate=certificate,
    )  # fmt: skip


def _endpoint(t: Mapping[str, Any], section: str, provider: Provider) -> Endpoint:
    try:
        return endpoint(provider, _str(t, f"{section}.tenant", "").strip(),
                        _str(t, f"{section}.token_url", "").strip(),
                        _str(t, f"{section}.scope", "").strip())  # fmt: skip
    except EndpointProblem as exc:
        raise ConfigError(f"{section}.{exc.key}", exc.problem) from None


def read_client_certificate(
    base: Path, section: str, certificate_file: str, key_file: str
) -> tuple[str, bytes]:
    """The RSA key (PEM) and the certificate (DER) of the client credentials.

    client_certificate_file holds the certificate, first, and the private key
    unless client_key_file names the key's own file: what `openssl req -x509
    -newkey rsa:2048 -nodes -keyout KEY -out CERT` writes (two files), or
    `openssl pkcs12 -nodes` out of the .pfx that New-SelfSignedCertificate
    exports (one). The key is not encrypted: the file itself is the secret."""
    from cryptography import x509  # lazy: only a certificate login needs it
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    cert_name = f"{section}.client_certificate_file"
    key_name = f"{section}.client_key_file" if key_file else cert_name
    cert_path = base / certificate_file
    key_path = base / key_file if key_file else cert_path
    cert_pem = _read_bytes(cert_path, cert_name)
    key_pem = _read_bytes(key_path, key_name) if key_file else cert_pem
    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise ConfigError(cert_name, f"{cert_path} holds no PEM certificate") from None
    blocks = re.findall(
        rb"-----BEGIN (?:RSA |ENCRYPTED )?PRIVATE KEY-----.*?"
        rb"-----END (?:RSA |ENCRYPTED )?PRIVATE KEY-----",
        key_pem,
        re.DOTALL,
    )
    if not blocks:
        raise ConfigError(
            key_name,
            f"{key_path} holds no PEM private key"
            + ("" if key_file else " (or name it in client_key_file)"),
        )
    try:
        key = serialization.load_pem_private_key(blocks[0], password=None)
    except TypeError:
        raise ConfigError(
            key_name,
            f"the private key in {key_path} is encrypted: "
            "write it out without a passphrase "
            "(openssl pkey -in KEY -out KEY.pem)",
        ) from None
    except ValueError:
        raise ConfigError(
            key_name, f"{key_path}: the private key cannot be read"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(key_name, "the client assertion is signed RS256: "
                          "the key must be an RSA key")  # fmt: skip
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != (
        certificate.public_key().public_bytes(der, public)
    ):
        raise ConfigError(key_name, f"the private key in {key_path} is not the "
                          f"key of the certificate in {cert_path}")  # fmt: skip
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return text, certificate.public_bytes(der)


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from None


def _read_secret(path: Path, name: str) -> str:
    """Read a secret file; an empty or unreadable one stops the start."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(name, f"{path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(name, f"{path} is empty")
    return value


def _sla(t: Mapping[str, Any]) -> SlaPolicy:
    _only(
        t,
        "sla",
        {
            "callback",
            "timezone",
            "business_hours",
            "business_days",
            "holidays",
            "reminder_at",
            "reannounce_every",
            "pdr_retry_after",
            "auto_close_after",
            "digest_at",
        },
    )
    callback = t.get("callback", {})
    if not isinstance(callback, dict):
        raise ConfigError("sla.callback", 'must be a table such as { high = "1h" }')
    _only(callback, "sla.callback", {"high", "medium", "low"})
    defaults = {Urgency.HIGH: "1h", Urgency.MEDIUM: "4h", Urgency.LOW: "8h"}
    timezone = _str(t, "sla.timezone", "Europe/Paris")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("sla.timezone", f"unknown time zone {timezone!r}") from None
    start, end = _hours(_str(t, "sla.business_hours", "08:00-18:00"))
    reminder_at = t.get("reminder_at", 0.75)
    if not isinstance(reminder_at, int | float) or not 0 < reminder_at < 1:
        raise ConfigError("sla.reminder_at", "must be a number between 0 and 1")
    policy = SlaPolicy(
        callback={
            u: _duration(
                {u.value: callback.get(u.value, d)}, u.value, d, "sla.callback."
            )
            for u, d in defaults.items()
        },
        timezone=timezone,
        business_start=start,
        business_end=end,
        business_days=_days(_str(t, "sla.business_days", "mon-fri")),
        holidays=_str(t, "sla.holidays", "FR"),
        reminder_at=float(reminder_at),
        reannounce_every=_duration(t, "reannounce_every", "30m"),
        pdr_retry_after=_duration(t, "pdr_retry_after", "2h"),
        auto_close_after=_duration(t, "auto_close_after", "7d"),
        digest_at=_clock(_str(t, "sla.digest_at", "08:30"), "sla.digest_at"),
    )
    try:
        BusinessCalendar.from_policy(policy)
    except ValueError as exc:
        raise ConfigError("sla.holidays", str(exc)) from None
    return policy


def _limits(t: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    _only(t, "limits", set(Limits.__dataclass_fields__))
    values = {
        name: _int(t, f"limits.{name}", getattr(defaults, name), 1, 2**40)
        for name in Limits.__dataclass_fields__
    }
    return Limits(**values)


def _retention(t: Mapping[str, Any]) -> Retention:
    _only(
        t,
        "retention",
        {"rate_days_after_close", "mail_days_after_close", "quarantine_days"},
    )
    return Retention(
        rate_days_after_close=_int(t, "retention.rate_days_after_close", 30, 0, 36500),
        mail_days_after_close=_int(t, "retention.mail_days_after_close", 365, 1, 36500),
        quarantine_days=_int(t, "retention.quarantine_days", 30, 1, 36500),
    )


def _log(t: Mapping[str, Any]) -> LogSettings:
    _only(t, "log", {"level", "format", "libraries"})
    text = _str(t, "log.format", LogFormat.TEXT)
    try:
        form = LogFormat(text)
    except ValueError:
        raise ConfigError("log.format", f"{text!r} is not text or json") from None
    return LogSettings(
        level=_log_level(_str(t, "log.level", LogLevel.INFO), "log.level"),
        format=form,
        libraries=_log_level(
            _str(t, "log.libraries", LogLevel.WARNING), "log.libraries"
        ),
    )


def _log_level(value: str, name: str, given: str = "") -> LogLevel:
    try:
        return LogLevel(value.strip().lower())
    except ValueError:
        raise ConfigError(
            name, f"{given or repr(value)} is not debug, info, warning or error"
        ) from None


def _authserv_ids(t: Mapping[str, Any]) -> tuple[str, ...]:
    """The trusted authserv-ids, as the MTA writes them: compared byte for byte."""
    name = "security.trusted_authserv_ids"
    ids = _strs(t, name, ())
    for value in ids:
        if not re.fullmatch(r"[!#-'*+\-.0-9A-Z^-~]+", value):
            raise ConfigError(
                name,
                f"{value!r} is not an authserv-id as the MTA writes it "
                "(one token, no spaces or quotes; case counts)",
            )
    return ids


def _database_url(url: str, base: Path) -> str:
    """Resolve a relative SQLite path from the configuration file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        rest = url[len(prefix) :]
        if not rest.startswith("/"):
            return prefix + str(base / rest)
    elif not url.startswith(("sqlite", "postgresql")):
        raise ConfigError("database.url", "must start with sqlite:/// or postgresql")
    return url


def _secret(t: Mapping[str, Any], section: str, base: Path) -> str:
    if "password_file" in t:
        path = base / _str(t, f"{section}.password_file", None)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{section}.password_file", f"cannot read {path}: {exc.strerror}"
            ) from None
    return _str(t, f"{section}.password", "")


def _table(
    raw: Mapping[str, Any], key: str, *, required: bool = False
) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(key, "missing section")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _only(t: Mapping[str, Any], section: str, allowed: set[str]) -> None:
    for key in t:
        if key not in allowed:
            name = f"{section}.{key}" if section else key
            raise ConfigError(name, "unknown key")


def _leaf(name: str) -> str:
    return name.rpartition(".")[2]


def _str(t: Mapping[str, Any], name: str, default: str | None) -> str:
    value = t.get(_leaf(name), default)
    if value is None:
        raise ConfigError(name, "missing")
    if not isinstance(value, str):
        raise ConfigError(name, "must be a string")
    return value


def _strs(
    t: Mapping[str, Any], name: str, default: tuple[str, ...] | None
) -> tuple[str, ...]:
    value = t.get(_leaf(name), default)
    if value is None:
        raise ConfigError(name, "missing")
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) for v in value
    ):
        raise ConfigError(name, "must be a list of strings")
    return tuple(value)


def _int(t: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = t.get(_leaf(name), default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be a whole number")
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}")
    return value


def _bool(t: Mapping[str, Any], name: str, default: bool) -> bool:
    value = t.get(_leaf(name), default)
    if not isinstance(value, bool):
        raise ConfigError(name, "must be true or false")
    return value


def _addr(value: str, name: str) -> str:
    if not is_plain_mailbox(value.strip()):
        raise ConfigError(
            name,
            f"{value!r} is not a plain mail address (no %, !, quotes or routes in it)",
        )
    return value.strip().lower()


def _address(t: Mapping[str, Any], name: str, default: str | None) -> str:
    return _addr(_str(t, name, default), name)


def _duration(
    t: Mapping[str, Any], key: str, default: str, prefix: str = "sla."
) -> timedelta:
    value = t.get(key, default)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise ConfigError(prefix + key, "must be a duration such as 30m, 4h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _clock(value: str, name: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(name, "must be a time such as 08:30")
    return time(int(match.group(1)), int(match.group(2)))


def _hours(value: str) -> tuple[time, time]:
    start, sep, end = value.partition("-")
    if not sep:
        raise ConfigError("sla.business_hours", "must be HH:MM-HH:MM")
    first = _clock(start, "sla.business_hours")
    last = _clock(end, "sla.business_hours")
    if last <= first:
        raise ConfigError("sla.business_hours", "must end after it starts")
    return first, last


def _days(value: str) -> frozenset[int]:
    days: set[int] = set()
    for part in value.lower().replace(" ", "").split(","):
        first, sep, last = part.partition("-")
        if first not in _DAYS or (sep and last not in _DAYS):
            raise ConfigError("sla.business_days", "such as mon-fri or mon,wed,fri")
        lo, hi = _DAYS.index(first), _DAYS.index(last if sep else first)
        if hi < lo:
            raise ConfigError("sla.business_days", "a range must go forward")
        days.update(range(lo, hi + 1))
    return frozenset(days)
