"""Configuration: the example file loads; each bad value names its key."""

from __future__ import annotations

import re
import tomllib
from datetime import time, timedelta
from pathlib import Path

import pytest

from maild.config import config_path, load_settings, parse_settings
from maild.domain import Urgency
from maild.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "maild.example.toml"
MINIMAL = {
    "helpdesk": {
        "accepted_domains": ["example.com"],
        "incident_address": "helpdesk@example.com",
        "pool_address": "pool@example.com",
    }
}


def _with(section: str, **values: object) -> dict[str, object]:
    raw: dict[str, dict[str, object]] = {k: dict(v) for k, v in MINIMAL.items()}
    raw.setdefault(section, {}).update(values)
    return raw


def test_example_file_loads_with_spec_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.helpdesk.tag == "HD"
    assert settings.helpdesk.language == "fr"
    assert settings.imap is None
    assert settings.smtp is None
    assert settings.smtp_intake is not None
    assert (settings.smtp_intake.host, settings.smtp_intake.port) == ("127.0.0.1", 2525)
    assert settings.sla.callback[Urgency.MEDIUM] == timedelta(hours=4)
    assert settings.sla.business_start == time(8)
    assert settings.sla.business_days == frozenset(range(5))
    assert settings.limits.handling_attempts == 3
    assert settings.database_url == f"sqlite:///{EXAMPLE.parent / 'maild.db'}"
    assert settings.storage_dir == EXAMPLE.parent / "var"


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    setting = re.compile(r"^# ?(\[\w+\]|\w+ *=)")
    uncommented = "\n".join(
        line[2:] if setting.match(line) else line for line in text.splitlines()
    )
    documented = tomllib.loads(uncommented)
    parse_settings(documented, EXAMPLE.parent, EXAMPLE)  # every key is known
    assert {"imap", "smtp", "smtp_intake", "security", "limits"} <= set(documented)


def test_minimal_config_takes_defaults() -> None:
    settings = parse_settings(MINIMAL, Path("/srv"), Path("/srv/maild.toml"))
    assert settings.helpdesk.request_address == "helpdesk@example.com"
    assert settings.storage_dir == Path("/srv/var")
    assert settings.from_address == "helpdesk@example.com"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "helpdesk"),
        ({**MINIMAL, "bogus": {}}, "bogus"),
        (_with("helpdesk", colour="red"), "helpdesk.colour"),
        (_with("helpdesk", language="de"), "helpdesk.language"),
        (_with("helpdesk", tag="H D"), "helpdesk.tag"),
        (_with("helpdesk", accepted_domains=[]), "helpdesk.accepted_domains"),
        (_with("helpdesk", technicians=["not an address"]), "helpdesk.technicians"),
        (_with("imap", port=70000, username="u"), "imap.port"),
        (_with("imap", tls="yes", username="u"), "imap.tls"),
        (_with("imap", host="h"), "imap.username"),
        (_with("smtp_intake", listen="2525"), "smtp_intake.listen"),
        (_with("sla", callback={"high": "fast"}), "sla.callback.high"),
        (_with("sla", callback={"urgent": "1h"}), "sla.callback.urgent"),
        (_with("sla", timezone="Mars/Olympus"), "sla.timezone"),
        (_with("sla", business_hours="18:00-08:00"), "sla.business_hours"),
        (_with("sla", business_days="fri-mon"), "sla.business_days"),
        (_with("sla", holidays="XX"), "sla.holidays"),
        (_with("sla", reminder_at=1.5), "sla.reminder_at"),
        (_with("sla", digest_at="25:00"), "sla.digest_at"),
        (_with("limits", parse_seconds=0), "limits.parse_seconds"),
        (_with("limits", max_parts="many"), "limits.max_parts"),
        (_with("database", url="mysql://x"), "database.url"),
        (_with("database", lease_seconds=1), "database.lease_seconds"),
        (_with("database", lease_seconds="9s"), "database.lease_seconds"),
        (_with("smtp", host="h"), "smtp.from_address"),
    ],
)
def test_bad_value_names_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, Path("/srv"), Path("/srv/maild.toml"))
    assert caught.value.key == key


def test_the_lease_of_the_roles_is_6_seconds_unless_set() -> None:
    default = parse_settings(_with("database"), Path("/srv"), Path("/srv/m.toml"))
    raw = _with("database", url="postgresql+psycopg://db/maild", lease_seconds=5)
    settings = parse_settings(raw, Path("/srv"), Path("/srv/m.toml"))
    assert (default.lease_seconds, settings.lease_seconds) == (6, 5)


def test_password_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "imap.secret").write_text("s3cret\n", encoding="utf-8")
    raw = _with("imap", username="u", password_file="imap.secret")
    settings = parse_settings(raw, tmp_path, tmp_path / "maild.toml")
    assert settings.imap is not None
    assert settings.imap.password == "s3cret"


def test_missing_password_file_names_the_key(tmp_path: Path) -> None:
    raw = _with("imap", username="u", password_file="nope")
    with pytest.raises(ConfigError, match=r"imap\.password_file"):
        parse_settings(raw, tmp_path, tmp_path / "maild.toml")


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[helpdesk\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def test_config_path_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILD_CONFIG", "/etc/maild/maild.toml")
    assert config_path("/x.toml") == Path("/x.toml")
    assert config_path(None) == Path("/etc/maild/maild.toml")
    monkeypatch.delenv("MAILD_CONFIG")
    assert config_path(None) == Path("maild.toml")
