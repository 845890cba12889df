"""The desk made the operator's own: its templates, its name (issue 15).

A template in `[templates] dir` replaces the shipped one of the same name and
language in the mail that goes out, the others stay as shipped; `maild
check-config` renders every template and names the one that fails; `maild
templates export` gives the shipped ones to start from; `[helpdesk] name`
signs every notification and is the From display name, encoded, on one line.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from markupsafe import escape

from maild import cli
from maild.adapters.database.models import OutboxRow
from maild.adapters.template_samples import check_templates, sample_notifications
from maild.adapters.templates import TEMPLATE_DIR
from maild.config import load_settings
from maild.errors import ConfigError
from maild.runtime import daemon
from maild.runtime.sender_wiring import make_renderer
from tests.support.daemon import run_maild, write_config
from tests.support.desk import MARIE, Desk

MINE = """
[templates]
dir = "mine"
"""
CONFIRMATION = """{% set subject %}Ticket opened: {{ ticket.subject }}{% endset %}
Dear colleague, your ticket {{ ticket.number }} is with us.
-- {{ helpdesk.name or "the desk" }}
"""


def desk_with(
    folder: Path, extra: str = "", *, language: str = "en", name: str = ""
) -> Desk:
    """A desk in folder; name, when given, is its `[helpdesk] name`."""
    folder.mkdir(parents=True, exist_ok=True)
    desk = Desk(folder, extra, language=language)
    if name:  # [helpdesk] is written by the desk: the key goes into it
        text = desk.config.read_text(encoding="utf-8")
        named = text.replace('tag = "HD"\n', f'tag = "HD"\nname = {name}\n', 1)
        desk.config.write_text(named, encoding="utf-8")
        desk.settings = load_settings(desk.config)
        desk.restart()
    return desk


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def parsed(row: OutboxRow) -> EmailMessage:
    message = email.message_from_bytes(row.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(row: OutboxRow) -> tuple[str, str]:
    """The text and HTML of a queued mail."""
    message = parsed(row)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return lines(text.get_content()), lines(html.get_content())


def lines(content: str) -> str:
    return content.replace("\r\n", "\n")


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[Desk]:
    """The desk on the shipped templates only: what nothing must change."""
    desk = desk_with(tmp_path / "shipped")
    desk.open()
    yield desk
    desk.close()


# -- an operator's template in the mail that goes out ---------------------------


def test_an_operator_template_replaces_the_shipped_one_and_no_other(
    tmp_path: Path, shipped: Desk
) -> None:
    folder = tmp_path / "desk"
    write(folder / "mine" / "en" / "confirmation.requester.txt.j2", CONFIRMATION)
    desk = desk_with(folder, MINE)
    try:
        number = desk.open()
        confirmation = desk.outbox_to(MARIE)[0]
        text, html = parts(confirmation)
        subject = f"[HD {number}] Ticket opened: Printer broken"
        assert parsed(confirmation)["Subject"] == subject
        assert (
            text == f"Dear colleague, your ticket {number} is with us.\n-- the desk\n"
        )
        # the HTML of the same mail (but the subject in its title), and every
        # other mail, stay as shipped
        as_shipped = parts(shipped.outbox_to(MARIE)[0])[1]
        assert html == as_shipped.replace("] Printer", "] Ticket opened: Printer")
        pool = "techniciens@example.com"
        assert parts(desk.outbox_to(pool)[0]) == parts(shipped.outbox_to(pool)[0])
    finally:
        desk.close()


def test_an_operator_partial_frames_every_shipped_page(tmp_path: Path) -> None:
    layout = (TEMPLATE_DIR / "fr" / "_layout.html.j2").read_text(encoding="utf-8")
    banner = "<p>Intranet : support.example.com</p>"
    mine = layout.replace("{% block body %}", f"{banner}\n{{% block body %}}")
    write(tmp_path / "mine" / "fr" / "_layout.html.j2", mine)
    desk = desk_with(tmp_path, MINE, language="fr")
    try:
        desk.open()
        for row in desk.outbox():
            assert banner in parts(row)[1]
    finally:
        desk.close()


# -- check-config -------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path, _ = write_config(tmp_path, sink_port=None, language="en", extra=MINE)
    (tmp_path / "mine").mkdir()
    return path


def check_config(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = cli.main(["--config", str(config), "check-config"])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("file", "source", "said"),
    [
        (
            "en/confirmation.requester.txt.j2",
            "{% set subject %}x{% endset %}\nTicket {{ ticket.nmber }}\n",
            "en/confirmation.requester.txt.j2: 'maild.domain.TicketView object' "
            "has no attribute 'nmber' (line 2)",
        ),
        (
            "fr/help.sender.html.j2",
            "{% if reader %}\n{{ mail_subject }}\n",
            "fr/help.sender.html.j2: Unexpected end of template. Jinja was looking "
            "for the following tags: 'elif' or 'else' or 'endif'. The innermost "
            "block that needs to be closed is 'if'. (line 2)",
        ),
        (
            "en/_fields.txt.j2",  # a partial, found through the page that includes it
            "{{ no_such_value }}\n",
            "en/_fields.txt.j2: 'no_such_value' is undefined (line 1)",
        ),
        (
            "fr/rejected.sender.txt.j2",
            "{% set subject %}{{ 1 // 0 }}{% endset %}\n",
            "fr/rejected.sender.txt.j2: ZeroDivisionError: integer division or "
            "modulo by zero (line 1)",
        ),
        (
            "en/list.sender.txt.j2",
            '{% include "_mine.txt.j2" %}\n',
            "en/list.sender.txt.j2: includes '_mine.txt.j2', which is no template "
            "(line 1)",
        ),
    ],
)
def test_check_config_names_the_template_that_fails_and_why(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    source: str,
    said: str,
) -> None:
    write(config.parent / "mine" / file, source)
    status, err = check_config(config, capsys)
    assert status == cli.EXIT_USAGE
    assert err == f"maild: configuration error: templates.dir: {said}\n"


def test_check_config_passes_the_shipped_templates_and_warns_of_strays(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = ["--config", str(config), "templates", "export", "--force"]
    assert cli.main([*export, str(config.parent / "mine")]) == 0
    write(config.parent / "mine" / "fr" / "confirmation.requestor.txt.j2", "x")
    write(config.parent / "mine" / "fr" / "_my_footer.txt.j2", "x")  # a partial
    status, err = check_config(config, capsys)
    assert status == 0
    assert err == (
        "maild: warning: templates.dir: fr/confirmation.requestor.txt.j2 is no "
        "template\n"
    )


def test_a_missing_folder_stops_the_daemon_at_start_naming_the_key(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config.parent / "mine").rmdir()
    status, err = check_config(config, capsys)
    assert status == cli.EXIT_USAGE
    assert err == (
        "maild: configuration error: templates.dir: no folder at "
        f"{config.parent / 'mine'}\n"
    )
    with pytest.raises(ConfigError, match=r"^templates\.dir: no folder"):
        daemon.build(load_settings(config), parse_workers=1)
    done = run_maild(config, "run")
    assert done.returncode == cli.EXIT_USAGE
    assert done.stderr.strip().endswith(err.strip())


def test_a_broken_template_stops_the_daemon_at_start_naming_it(
    config: Path,
) -> None:
    write(config.parent / "mine" / "fr" / "_fields.txt.j2", "{{ 1 + }}\n")
    done = run_maild(config, "run")
    assert done.returncode == cli.EXIT_USAGE
    assert done.stderr.strip().splitlines()[-1] == (
        "maild: configuration error: templates.dir: fr/_fields.txt.j2: "
        "unexpected 'end of print statement' (line 1)"
    )


def test_the_samples_reach_every_shipped_template() -> None:
    stems = {f"{n.template}.{n.audience.value}" for n in sample_notifications()}
    files = {
        path.name.removesuffix(".txt.j2")
        for path in (TEMPLATE_DIR / "en").glob("*.txt.j2")
        if not path.name.startswith("_")
    }
    assert stems == files


def test_every_shipped_template_renders_every_sample(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    settings = load_settings(config)
    assert check_templates(lambda language: make_renderer(settings, language)) == []


# -- templates export ---------------------------------------------------------------


def test_export_writes_the_shipped_templates_and_never_overwrites_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    target = tmp_path / "start"
    export = ["--config", str(config), "templates", "export", str(target)]
    assert cli.main(export) == 0
    shipped = sorted(TEMPLATE_DIR.glob("*/*.j2"))
    copies = sorted(target.glob("*/*.j2"))
    assert [p.relative_to(target) for p in copies] == [
        p.relative_to(TEMPLATE_DIR) for p in shipped
    ]
    assert all(
        c.read_bytes() == s.read_bytes() for c, s in zip(copies, shipped, strict=True)
    )
    assert capsys.readouterr().out == f"{len(shipped)} templates written to {target}\n"
    mine = write(target / "en" / "help.sender.txt.j2", "mine")
    assert cli.main(export) == 1
    assert "nothing written (--force overwrites)" in capsys.readouterr().err
    assert mine.read_text() == "mine"
    assert cli.main([*export, "--force"]) == 0
    assert (
        mine.read_bytes() == (TEMPLATE_DIR / "en" / "help.sender.txt.j2").read_bytes()
    )


# -- [helpdesk] name --------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            "en",
            [
                "Here is how to use iservices by email.",
                "alice@example.com, from iservices, has written to you",
            ],
        ),
        (
            "fr",
            [
                "Voici comment utiliser iservices par courriel.",
                "alice@example.com (iservices) vous écrit",
            ],
        ),
    ],
)
def test_the_name_signs_every_mail_and_is_the_from_display_name(
    tmp_path: Path, language: str, said: list[str]
) -> None:
    desk = desk_with(tmp_path, language=language, name='"iservices"')
    try:
        number = desk.open()
        desk.mail("alice@example.com", f"Re: [HD {number}]", "CLAIM")
        desk.mail("alice@example.com", f"Re: [HD {number}]", "On my way.")
        desk.mail(MARIE, "HELP")
        rows = desk.outbox()
        assert len(rows) >= 5
        bodies = ""
        for row in rows:
            message = parsed(row)
            (sender,) = message["From"].addresses
            assert (sender.display_name, sender.addr_spec) == (
                "iservices",
                "helpdesk@example.com",
            )
            text, html = parts(row)
            assert text.endswith("\n-- \niservices\n")
            assert ">iservices</p>" in html
            bodies += text + html
        assert "IT Helpdesk" not in bodies
        assert "e support informatique" not in bodies  # Le, le: the shipped name
        for words in said:
            assert words in bodies
    finally:
        desk.close()


def test_without_a_name_the_mails_sign_as_shipped(shipped: Desk) -> None:
    for row in shipped.outbox():
        assert parsed(row)["From"] == "helpdesk@example.com"
        text, html = parts(row)
        assert text.endswith("\n-- \nIT Helpdesk\n")
        assert ">IT Helpdesk</p>" in html


@pytest.mark.parametrize(
    "name",
    [
        'iservices, "IT" <evil@example.org>',  # quoted
        "Équipe « iservices », Bcc: <x@evil.org>",  # RFC 2047-encoded
    ],
)
def test_a_name_that_needs_quoting_or_encoding_stays_one_display_name(
    tmp_path: Path, name: str
) -> None:
    desk = desk_with(tmp_path, name=json.dumps(name, ensure_ascii=False))
    try:
        desk.open()
        for row in desk.outbox():
            head = row.data.split(b"\r\n\r\n")[0]
            assert head.isascii()
            assert not any(
                line.lower().startswith(b"bcc") for line in head.split(b"\r\n")
            )
            (sender,) = parsed(row)["From"].addresses
            assert (sender.display_name, sender.addr_spec) == (
                name,
                "helpdesk@example.com",
            )
            assert str(escape(name)) in parts(row)[1]  # escaped in the HTML
    finally:
        desk.close()


@pytest.mark.parametrize(
    "value",
    ['"iservices\\r\\nBcc: evil@example.org"', '"a\\u2028b"', f'"{"x" * 101}"'],
)
def test_a_name_on_more_than_one_line_is_refused(tmp_path: Path, value: str) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    text = config.read_text().replace('tag = "HD"\n', f'tag = "HD"\nname = {value}\n')
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"^helpdesk\.name: one line"):
        load_settings(config)
