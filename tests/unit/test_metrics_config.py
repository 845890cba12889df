"""[metrics]: no endpoint unless configured, on the loopback by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import MetricsSettings, Settings, parse_settings
from maild.errors import ConfigError

HELPDESK = {
    "accepted_domains": ["example.com"],
    "incident_address": "helpdesk@example.com",
    "pool_address": "pool@example.com",
}


def _parse(**tables: object) -> Settings:
    raw = {"helpdesk": HELPDESK, **tables}
    return parse_settings(raw, Path("/srv"), Path("/srv/maild.toml"))


def test_no_section_no_endpoint() -> None:
    assert _parse().metrics is None


def test_an_empty_section_listens_on_the_loopback() -> None:
    assert _parse(metrics={}).metrics == MetricsSettings("127.0.0.1", 9187)


def test_listen_is_read() -> None:
    settings = _parse(metrics={"listen": "[::1]:9300"})
    assert settings.metrics == MetricsSettings("::1", 9300)


@pytest.mark.parametrize(
    ("metrics", "key"),
    [
        ({"listen": "9187"}, "metrics.listen"),
        ({"listen": "127.0.0.1:99999"}, "metrics.listen"),
        ({"port": 9187}, "metrics.port"),
    ],
)
def test_a_wrong_key_names_itself(metrics: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse(metrics=metrics)
    assert str(raised.value).startswith(f"{key}:")
