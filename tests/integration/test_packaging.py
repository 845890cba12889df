"""maild installed as a user installs it: a wheel in a fresh venv, run elsewhere.

The wheel is built once a session (`pip wheel`, build backend from the
registry, pip's cache reused) and installed with its dependencies into a
fresh venv, never editable. The daemon then runs from a folder of its own,
away from the checkout, on the quick start's setup (SQLite, the SMTP intake,
no relay: mail kept as .eml files), and one mail must come back confirmed:
the shipped templates travel inside the wheel (issue 15).
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import smtplib
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ROOT, is_listening
from tests.support.smtp_sink import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CONFIG = """
[helpdesk]
language = "en"
accepted_domains = ["example.com"]
incident_address = "helpdesk@example.com"
pool_address = "techniciens@example.com"

[smtp_intake]
listen = "127.0.0.1:{port}"

[database]
url = "sqlite:///maild.db"

[storage]
dir = "storage"
"""
MAIL = (
    b"From: Marie <marie@example.com>\r\nTo: helpdesk@example.com\r\n"
    b"Subject: Printer broken\r\nMessage-ID: <wheel.1@client.example.com>\r\n\r\n"
    b"Urgency: high\r\n\r\nNothing prints on the 2nd floor.\r\n"
)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once a session."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", str(ROOT), "--no-deps", "-w", str(out)]
    subprocess.run(build, check=True, timeout=300)
    (built,) = out.glob("maild-*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies installed, not editable."""
    venv = tmp_path_factory.mktemp("venv")
    # No pip of its own (ensurepip costs seconds): the tests' pip installs into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    install = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    install += ["--python", str(venv / "bin" / "python"), "install", str(wheel)]
    subprocess.run(install, check=True, timeout=600)
    return venv


@pytest.fixture
def port() -> int:
    """The SMTP intake's port."""
    return free_port()


@pytest.fixture
def elsewhere(tmp_path: Path, port: int) -> Path:
    """A folder away from the checkout, with the quick start's configuration."""
    (tmp_path / "maild.toml").write_text(CONFIG.format(port=port))
    return tmp_path


def clean_env() -> dict[str, str]:
    """The environment without anything that would find the checkout's maild."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def maild(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "maild"), "--config", "maild.toml", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def daemon(venv: Path, elsewhere: Path, port: int) -> Iterator[int]:
    """`maild run` of the venv, started in elsewhere; yields the intake's port."""
    log = elsewhere / "maild.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin" / "maild"), "--config", "maild.toml", "run"],
            cwd=elsewhere,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: is_listening(process, port, log), 60, "the intake")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()


def test_the_wheel_carries_every_shipped_template(wheel: Path) -> None:
    shipped = {
        f"maild/templates/{path.parent.name}/{path.name}"
        for path in (ROOT / "templates").glob("*/*.j2")
    }
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert len(shipped) > 100
    assert shipped <= names
    assert "maild/migrations/versions/0001_initial_schema.py" in names
    assert not any(name.startswith("templates/") for name in names)


def test_the_installed_maild_finds_its_templates_in_the_package(
    venv: Path, elsewhere: Path
) -> None:
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import maild.adapters.templates as t; print(t.TEMPLATE_DIR)",
        ],
        cwd=elsewhere,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    checked = maild(venv, elsewhere, "check-config")
    assert checked.returncode == 0, checked.stderr
    exported = maild(venv, elsewhere, "templates", "export", "mine")
    assert exported.returncode == 0, exported.stderr
    assert (elsewhere / "mine" / "fr" / "confirmation.requester.txt.j2").is_file()


def test_the_installed_daemon_confirms_a_mail(daemon: int, elsewhere: Path) -> None:
    with smtplib.SMTP("127.0.0.1", daemon, timeout=30) as client:
        client.sendmail("marie@example.com", ["helpdesk@example.com"], MAIL)
    outbox = elsewhere / "storage" / "outbox"

    def confirmation() -> email.message.Message | None:
        for path in outbox.glob("*.eml"):
            message = email.message_from_bytes(
                path.read_bytes(), policy=email.policy.default
            )
            if message["To"] == "marie@example.com":
                return message
        return None

    message = wait_until(confirmation, 30, "the confirmation in storage/outbox")
    assert str(message["Subject"]).startswith("[HD I")
    assert str(message["Subject"]).endswith("Printer broken")
    text = message.get_body(("plain",))
    assert text is not None
    assert "has been logged" in text.get_content()
