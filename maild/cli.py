"""Command line: run | check-config | db | tickets | stats | quarantine | staff |
replay. I/O.

Output meant for machines is JSON on stdout with `--json`; errors are one
line on stderr and a non-zero exit status (README, "Exit statuses": 1 not
found or refused, 2 usage or configuration). `mails list|show` say what
became of each mail taken in. The commands that only read or
change the database do not import the daemon's modules (IMAP, SMTP, parsing,
templates): a supervisor's `tickets list` starts faster.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from maild.adapters.database import mail_report, report
from maild.adapters.database.instances import status_report, upgrade_when_safe
from maild.adapters.database.staff import ROLES, add_staff, list_staff, remove_staff
from maild.adapters.database.store import Store, open_store
from maild.config import (
    LOG_LEVEL_VAR,
    LogLevel,
    LogSettings,
    Settings,
    config_path,
    load_settings,
    with_log_level,
)
from maild.core.addresses import normalize_address
from maild.domain import MailDisposition, MailOrigin, TicketState
from maild.errors import ConfigError, MaildError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def main(
    argv: Sequence[str] | None = None,
    configure_logging: Callable[[LogSettings], None] | None = None,
) -> int:
    """Run the maild command line; return the exit status.

    configure_logging is the entry point's (maild/__main__.py), called once the
    log settings are known; without it, logging is left as it is.
    """
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
        settings = with_log_level(settings, args.log_level)
        if configure_logging is not None:
            configure_logging(settings.log)
        return _command(lambda: int(args.func(settings, args)))
    except ConfigError as exc:
        if args.func is _doctor:  # doctor reports it as its config check
            return _report_config_error(exc, args)
        print(f"maild: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MaildError as exc:
        print(f"maild: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maild", description=__doc__)
    parser.add_argument(
        "--config",
        help="configuration file (default: $MAILD_CONFIG, else ./maild.toml)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=[level.value for level in LogLevel],
        help=f"maild's log level (default: ${LOG_LEVEL_VAR}, else [log] level)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daemon").set_defaults(func=_run)
    commands.add_parser("check-config", help="validate the configuration").set_defaults(
        func=_check_config
    )
    _templates_parser(commands)
    db = commands.add_parser("db", help="database schema").add_subparsers(
        required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="migrate to the newest schema").set_defaults(
        func=_db_upgrade
    )
    status = commands.add_parser("status", help="the instances running, their roles")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)
    tickets = commands.add_parser(
        "tickets", help="list and show tickets"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = tickets.add_parser("list", help="list tickets, oldest first")
    listing.add_argument("--status", choices=[s.value for s in TicketState])
    _ticket_filters(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_tickets_list)
    show = tickets.add_parser("show", help="one ticket with its history")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_tickets_show)
    stats = commands.add_parser("stats", help="backlog, SLA, outbox, quarantine")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_stats)
    _quarantine_parser(commands)
    _mails_parser(commands)
    _operations_parser(commands)
    _staff_parser(commands)
    replay = commands.add_parser(
        "replay", help="handle a saved mail as if it had arrived"
    )
    replay.add_argument("file", type=Path)
    replay.add_argument(
        "--to",
        action="append",
        default=[],
        help="envelope recipient (default: the incident address)",
    )
    replay.set_defaults(func=_replay)
    _privacy_parsers(commands)
    return parser


def _operations_parser(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check configuration, database, storage, mailbox, relay, outbox, "
        "quarantine and SLA; exit 0 all ok, 1 a warning, 2 a failure",
    )
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_doctor)
    backup = commands.add_parser(
        "backup",
        help="copy the database, then the kept mail and attachments, into DIR "
        "(a new or empty folder); safe while the daemon runs",
    )
    backup.add_argument("dir", type=Path)
    backup.set_defaults(func=_backup)
    restore = commands.add_parser(
        "restore",
        help="put a backup back (stop the daemon first); refuses to replace a "
        "database or blobs unless --force",
    )
    restore.add_argument("dir", type=Path)
    restore.add_argument("--force", action="store_true", help="replace what is there")
    restore.set_defaults(func=_restore)


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from maild.adapters.database import backup  # lazy: pg_dump, file copies

    try:
        done = backup.backup(settings, args.dir)
    except (backup.BackupError, OSError) as exc:
        print(f"maild: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dir}: {done.database} database (schema {done.schema}), "
          f"{done.blobs} blobs, {done.outgoing} outgoing mails")  # fmt: skip
    return 0


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from maild.adapters.database import backup

    try:
        done = backup.restore(settings, args.dir, force=args.force)
    except (backup.BackupError, OSError) as exc:
        print(f"maild: restore refused: {exc}", file=sys.stderr)
        return 1
    print(f"restored from {args.dir}: {done.database} database (schema "
          f"{done.schema}), {done.blobs} blobs, {done.outgoing} outgoing "
          "mails")  # fmt: skip
    return 0


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from maild.runtime.doctor import diagnose  # lazy: probes IMAP and SMTP

    return _print_checks(diagnose(settings), args.json)


def _report_config_error(error: ConfigError, args: argparse.Namespace) -> int:
    from maild.runtime.doctor import config_failed

    return _command(lambda: _print_checks(config_failed(error), args.json))


def _print_checks(checks: Sequence[Any], as_json: bool) -> int:
    """doctor's report: SPEC's JSON, or one line a check and its fix."""
    from maild.core.health import exit_status

    if as_json:
        _print_json(
            {
                "checks": [
                    {
                        "name": c.name,
                        "status": c.status.value,
                        "detail": c.detail,
                        "fix": c.fix or None,
                    }
                    for c in checks
                ]
            }
        )
    else:
        for check in checks:
            print(f"{check.status.value.upper():4}  {check.name:10}  {check.detail}")
            if check.fix:
                print(f"{'':16}fix: {check.fix}")
    return exit_status(checks)


def _privacy_parsers(commands: Any) -> None:
    """purge and person: personal data with an end (README, Personal data)."""
    purge = commands.add_parser("purge", help="remove what retention says is due")
    purge.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    purge.add_argument("--json", action="store_true")
    purge.set_defaults(func=_purge)
    person = commands.add_parser(
        "person", help="one person's data: export, anonymise"
    ).add_subparsers(required=True, metavar="ACTION")
    export = person.add_parser("export", help="everything naming ADDRESS, as a zip")
    export.add_argument("address")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.zip")
    export.set_defaults(func=_person_export)
    anonymise = person.add_parser(
        "anonymise", help="replace ADDRESS, its name and phone by a pseudonym"
    )
    anonymise.add_argument("address")
    anonymise.add_argument(
        "--by", default="", help="who asks (default: the user running maild)"
    )
    anonymise.add_argument("--json", action="store_true")
    anonymise.set_defaults(func=_person_anonymise)


def _purge(settings: Settings, args: argparse.Namespace) -> int:
    from maild.runtime import retention  # the purge's wiring: this command's only

    store = open_store(settings, migrate=True)
    try:
        now = datetime.now(UTC)
        done = retention.purge(settings, store, now, dry_run=args.dry_run)
    finally:
        store.close()
    counts = {"mails": done.mails, "attachments": done.attachments, "blobs": done.blobs}
    if args.json:
        _print_json(counts)
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"{verb}: {done.mails} raw mail(s), {done.attachments} attachment(s), "
            f"{done.blobs} blob file(s)"
        )
    return 0


def _person_address(text: str) -> str | None:
    address = normalize_address(text)
    if not address:
        print(f"maild: not an address: {text!r}", file=sys.stderr)
    return address or None


def _person_export(settings: Settings, args: argparse.Namespace) -> int:
    from maild.runtime import person

    address = _person_address(args.address)
    if address is None:
        return 1
    try:
        index = person.export(settings, address, args.out, datetime.now(UTC))
    except OSError as exc:
        print(f"maild: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"{args.out}: {len(index['tickets'])} ticket(s), {len(index['mails'])} mail(s)"
    )
    return 0


def _person_anonymise(settings: Settings, args: argparse.Namespace) -> int:
    from maild.runtime import person

    address = _person_address(args.address)
    if address is None:
        return 1
    done = person.anonymise(settings, address, args.by, datetime.now(UTC))
    counts = {
        "pseudonym": done.pseudonym,
        "tickets": done.tickets,
        "mails": done.mails,
        "attachments": done.attachments,
        "blobs": done.blobs,
    }
    if args.json:
        _print_json(counts)
    else:
        print(
            f"{address} is now {done.pseudonym} on {done.tickets} ticket(s); "
            f"removed {done.mails} raw mail(s), {done.attachments} attachment(s)"
        )
    return 0


def _staff_parser(commands: Any) -> None:
    staff = commands.add_parser(
        "staff", help="technicians and supervisors added from the command line"
    ).add_subparsers(required=True, metavar="ACTION")
    add = staff.add_parser("add", help="give an address a staff role")
    add.add_argument("address")
    add.add_argument("--role", choices=ROLES, required=True)
    add.set_defaults(func=_staff_add)
    remove = staff.add_parser("remove", help="take back a role given with add")
    remove.add_argument("address")
    remove.set_defaults(func=_staff_remove)
    listing = staff.add_parser("list", help="all staff, from config and CLI")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_staff_list)


def _staff_add(settings: Settings, args: argparse.Namespace) -> int:
    address = normalize_address(args.address)  # the rule mail is sent by
    if address is None:
        print(f"maild: {args.address!r} is not a mail address", file=sys.stderr)
        return 1
    add_staff(open_store(settings, migrate=True), address, args.role, datetime.now(UTC))
    print(f"{address.lower()} is now a {args.role}")
    return 0


def _staff_remove(settings: Settings, args: argparse.Namespace) -> int:
    if not remove_staff(open_store(settings, migrate=True), args.address):
        print(
            f"maild: {args.address} was not added with the CLI"
            " (staff from the configuration are removed there)",
            file=sys.stderr,
        )
        return 1
    print(f"{args.address.lower()} removed")
    return 0


def _staff_list(settings: Settings, args: argparse.Namespace) -> int:
    members = list_staff(open_store(settings, migrate=True), settings)
    rows = [{"address": m.address, "role": m.role, "source": m.source} for m in members]
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ("address", "role", "source"))
    return 0


def _quarantine_parser(commands: Any) -> None:
    quarantine = commands.add_parser(
        "quarantine", help="mail kept aside, and trying it again"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = quarantine.add_parser("list", help="the quarantined mails and why")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_quarantine_list)
    retry = quarantine.add_parser(
        "retry",
        help="handle a quarantined mail again, as a fresh attempt (after a fix)",
        description=(
            "Handle a quarantined mail again from the bytes maild kept, with its "
            "attempts reset, and print where it ends (done or quarantined). "
            "The SMTP envelope is not kept: the mail's own headers say which "
            "helpdesk address it was for. A mail taken in over IMAP stays in "
            "the quarantine folder of the mailbox: move or delete it there "
            "yourself if you wish."
        ),
    )
    retry.add_argument("id", type=int, help="the id shown by `quarantine list`")
    retry.set_defaults(func=_quarantine_retry)


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from maild.runtime import daemon  # see _handle_once

    return daemon.run(settings)


def _check_config(settings: Settings, _args: argparse.Namespace) -> int:
    if not _templates_render(settings):
        return EXIT_USAGE
    problems = _oauth2_logins(settings)
    for problem in problems:
        print(f"maild: {problem}", file=sys.stderr)
    if problems:
        return 1
    intakes = [
        name
        for name, on in (("smtp", settings.smtp_intake), ("imap", settings.imap))
        if on
    ]
    relay = (
        f"relay {settings.smtp.host}:{settings.smtp.port}"
        if settings.smtp
        else f"kept as .eml under {settings.storage_dir / 'outbox'}"
    )
    print(
        f"{settings.path}: OK (intake: {', '.join(intakes) or 'none'}; "
        f"outbound mail: {relay})"
    )
    return 0


def _oauth2_logins(settings: Settings) -> list[str]:
    """Get a token and log in once with each OAuth2 login; say what failed.

    A password login is left to the daemon's start, as before; an OAuth2 one
    has more ways to be wrong (tenant, consent, the mailbox's permission) and
    an admin wants to know before starting.
    """
    from imapclient.exceptions import LoginError

    from maild.adapters.intake.imap import ImapIntake
    from maild.adapters.oauth2 import TokenSource
    from maild.adapters.outgoing.relay import SmtpRelay
    from maild.errors import MailboxUnavailable, TransientError

    problems: list[str] = []
    imap, smtp = settings.imap, settings.smtp
    if imap is not None and imap.oauth2 is not None:
        intake = ImapIntake(imap, _NoHandler(),
                            tokens=TokenSource(imap.oauth2, _now))  # fmt: skip
        try:
            intake.check_login()
        except MailboxUnavailable as exc:
            refused = isinstance(exc.__cause__, LoginError)
            problems.append(f"imap: cannot log in: {exc}"
                            + (_MAILBOX_REFUSED if refused else ""))  # fmt: skip
        except TransientError as exc:
            problems.append(f"imap: cannot log in: {exc}")
        else:
            print(f"imap: {imap.username} logged in with an OAuth2 token "
                  f"({imap.oauth2.grant} grant)")  # fmt: skip
    if smtp is not None and smtp.oauth2 is not None:
        relay = SmtpRelay(smtp, tokens=TokenSource(smtp.oauth2, _now))
        try:
            relay.check_login()
        except TransientError as exc:
            problems.append(f"smtp: cannot log in: {exc}")
        else:
            print(f"smtp: {smtp.username} logged in with an OAuth2 token "
                  f"({smtp.oauth2.grant} grant)")  # fmt: skip
    return problems


_MAILBOX_REFUSED = (
    " -- the provider gave a token, but the server refused it for this mailbox:"
    " with Microsoft 365, the application's service principal needs"
    " Add-MailboxPermission on it (README, OAuth2 logins); check username too"
)


def _now() -> datetime:
    return datetime.now(UTC)


class _NoHandler:
    """check-config logs in and out; it never reads a mail."""

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        raise AssertionError("check-config reads no mail")


def _templates_parser(commands: Any) -> None:
    templates = commands.add_parser(
        "templates", help="the notification templates"
    ).add_subparsers(required=True, metavar="ACTION")
    export = templates.add_parser(
        "export",
        help="copy the shipped templates into DIR, to start [templates] dir from",
    )
    export.add_argument("dir", type=Path)
    export.add_argument("--force", action="store_true", help="overwrite files there")
    export.set_defaults(func=_templates_export)


def _templates_render(settings: Settings) -> bool:
    """Render every template with sample values; print each that fails."""
    from maild.adapters.template_samples import check_templates, strays  # lazy
    from maild.runtime.sender_wiring import make_renderer

    failures = check_templates(lambda language: make_renderer(settings, language))
    key = "templates.dir" if settings.templates_dir else "templates"
    for failure in failures:
        print(f"maild: configuration error: {key}: {failure}", file=sys.stderr)
    if settings.templates_dir is not None:
        for name in strays(settings.templates_dir):
            print(f"maild: warning: {key}: {name} is no template", file=sys.stderr)
        if not failures:
            print(f"templates: {settings.templates_dir} first, then the shipped ones")
    return not failures


def _templates_export(_settings: Settings, args: argparse.Namespace) -> int:
    from maild.adapters.templates import export_templates  # lazy: the docstring

    try:
        written = export_templates(args.dir, force=args.force)
    except FileExistsError as exc:
        print(f"maild: {exc}; nothing written (--force overwrites)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"maild: cannot write to {args.dir}: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} templates written to {args.dir}")
    return 0


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade_when_safe(settings.database_url, settings.lease_seconds)
    print("database schema is up to date")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    report = status_report(settings)
    if args.json:
        _print_json(report)
        return 0
    rows = [
        {**i, "roles": ",".join(i["roles"]) or "-"}  # type: ignore[arg-type]
        for i in report["instances"]
    ]
    _print_table(rows, ("id", "host", "pid", "started_at", "seen_at", "roles"))
    return 0


def _tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings, migrate=True)
    now = datetime.now(UTC)
    query = report.TicketQuery(
        status=TicketState(args.status) if args.status else None,
        owner=args.owner,
        requester=args.requester,
        since=_since(args.since, settings, now),
        breached_by=now if args.breached else None,
        search=args.search,
    )
    rows = report.list_tickets(store, query)
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ("number", "status", "urgency", "owner", "subject"))
    return 0


def _tickets_show(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings, migrate=True)
    ticket = report.show_ticket(store, args.number)
    if ticket is None:
        print(f"maild: no ticket {args.number}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(ticket)
        return 0
    zone = ZoneInfo(settings.sla.timezone)
    _print_fields(ticket, zone, skip=("description", "events"))
    print()
    print(_printable(ticket["description"], keep="\n\t"))
    for event in ticket["events"]:
        internal = "  (internal)" if event["internal"] else ""
        message_id = f"  <{event['message_id']}>" if event["message_id"] else ""
        print()
        print(
            f"{_local(event['at'], zone)}  {event['kind']}  "
            f"{_printable(event['actor'])}{internal}{_printable(message_id)}"
        )
        for line in _printable(event["text"], keep="\n\t").splitlines():
            print(f"    {line}")
    return 0


def _stats(settings: Settings, _args: argparse.Namespace) -> int:
    _print_json(report.stats(open_store(settings, migrate=True)))
    return 0


def _ticket_filters(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--owner", metavar="ADDRESS", help="claimed by ADDRESS")
    listing.add_argument("--requester", metavar="ADDRESS", help="opened by ADDRESS")
    listing.add_argument(
        "--since", type=_moment, metavar="WHEN", help=f"opened since WHEN ({_WHEN})"
    )
    listing.add_argument(
        "--breached",
        action="store_true",
        help="only those whose call-back deadline was missed",
    )
    listing.add_argument(
        "--search",
        metavar="TEXT",
        help="TEXT in the subject or the description (case ignored)",
    )


def _mails_parser(commands: Any) -> None:
    mails = commands.add_parser(
        "mails", help="every mail received and what became of it"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = mails.add_parser(
        "list",
        help="the mails received, oldest first, with their outcome and reason",
    )
    listing.add_argument("--outcome", choices=[f.value for f in mail_report.FATES])
    listing.add_argument(
        "--since", type=_moment, metavar="WHEN", help=f"received since WHEN ({_WHEN})"
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_mails_list)
    show = mails.add_parser(
        "show", help="one mail: its record, where its bytes are, its ticket"
    )
    show.add_argument("id", type=int, help="the id shown by `mails list`")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_mails_show)


def _mails_list(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings, migrate=True)
    fate = next((f for f in mail_report.FATES if f.value == args.outcome), None)
    since = _since(args.since, settings, datetime.now(UTC))
    rows = mail_report.list_mails(store, fate, since)
    if args.json:
        _print_json(rows)
        return 0
    zone = ZoneInfo(settings.sla.timezone)
    _print_table(
        [{**row, "received": _local(row["received_at"], zone)} for row in rows],
        ("id", "received", "outcome", "ticket", "sender", "subject", "reason"),
    )
    return 0


def _mails_show(settings: Settings, args: argparse.Namespace) -> int:
    mail = mail_report.show_mail(open_store(settings, migrate=True), args.id)
    if mail is None:
        print(f"maild: no mail {args.id}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(mail)
    else:
        _print_fields(mail, ZoneInfo(settings.sla.timezone))
    return 0


_WHEN: Final = "a date, a date and time, or a duration back from now: 30m, 12h, 7d"
_DURATION: Final = re.compile(r"(\d+)\s*([mhdw])")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _moment(text: str) -> datetime | timedelta:
    """A --since value: a time (naive when it names no offset) or a duration."""
    duration = _DURATION.fullmatch(text.strip().lower())
    if duration is not None:
        return timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a date (2026-11-30, 2026-11-30T14:00) "
            "nor a duration (30m, 12h, 7d)"
        ) from None


def _since(
    moment: datetime | timedelta | None, settings: Settings, now: datetime
) -> datetime | None:
    """The moment a --since value names; a time without offset is the desk's."""
    if moment is None:
        return None
    if isinstance(moment, timedelta):
        return now - moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=ZoneInfo(settings.sla.timezone))
    return moment


def _command(run: Callable[[], int]) -> int:
    """Run a command; a reader that stops reading (`| head`) ends it quietly.

    Its output is flushed here, so that a reader gone shows now and not at
    exit; then stdout points at /dev/null, or Python's own flush at exit
    would print a traceback. What the reader wanted it has: status 0.
    """
    try:
        status = run()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("maild: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


def _print_fields(
    record: dict[str, Any], zone: ZoneInfo, skip: Sequence[str] = ()
) -> None:
    """Every field of a record, one a line (a list's items under each other)."""
    width = max(len(key) for key in record)
    for key, value in record.items():
        if key in skip:
            continue
        first, *more = _human(key, value, zone) or ["-"]
        print(f"{key:{width}}  {first}")
        for line in more:
            print(f"{'':{width}}  {line}")


def _human(key: str, value: Any, zone: ZoneInfo) -> list[str]:
    """A JSON value of the command line's, as lines for a person to read."""
    if value is None:
        return ["-"]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, list):
        return [line for item in value for line in _human(key, item, zone)]
    if isinstance(value, dict):
        return [_human_object(value, zone)]
    if key.endswith("_at"):  # SPEC: times are ISO 8601 with offset
        return [_local(value, zone)]
    return _printable(str(value), keep="\n\t").splitlines() or [""]


def _human_object(value: dict[str, Any], zone: ZoneInfo) -> str:
    """A person, a rating, an attachment or an event, on one line."""
    if "address" in value:  # a person
        name, address = value.get("name"), value["address"]
        text = f"{name} <{address}>" if name else str(address)
    elif "score" in value:  # a rating
        text = f"{value['score']}/5 {value['comment']}".strip()
    elif "filename" in value:  # an attachment
        inline = ", inline" if value.get("inline") else ""
        text = (
            f"{value['filename']} ({value['content_type']}, {value['size']} bytes"
            f"{inline}) sha256 {value['sha256']}"
        )
    elif "kind" in value:  # an event of the mail's ticket
        text = f"{_local(value['at'], zone)}  {value['kind']}  {value['text']}"
    else:
        text = ", ".join(f"{k}: {v}" for k, v in value.items())
    return _cell(text)


def _local(moment: str | None, zone: ZoneInfo) -> str:
    """An ISO time of the JSON output, in the desk's time zone, to the minute."""
    if moment is None:
        return "-"
    return datetime.fromisoformat(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M")


# What a mail's sender may put in a header to drive the reader's terminal:
# control characters (escape sequences) and the bidirectional overrides.
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable(text: str, keep: str = "") -> str:
    """Text with its control characters shown as escapes, except those in keep."""
    return "".join(
        c
        if c in keep or not (unicodedata.category(c) == "Cc" or c in _BIDI)
        else ascii(c)[1:-1]
        for c in text
    )


def _quarantine_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = report.quarantine_list(open_store(settings, migrate=True))
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ("id", "received_at", "sender", "reason"))
    return 0


def _quarantine_retry(settings: Settings, args: argparse.Namespace) -> int:
    def reopened(store: Store) -> tuple[bytes, MailOrigin]:
        kept = store.reopen_quarantined(args.id)
        return kept.raw, kept.origin

    return _handle_once(settings, reopened)


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"maild: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    recipients = tuple(a.lower() for a in args.to) or (
        settings.helpdesk.incident_address,
    )
    origin = MailOrigin(source="replay", envelope_recipients=recipients)
    return _handle_once(settings, lambda _store: (raw, origin))


def _handle_once(
    settings: Settings, take: Callable[[Store], tuple[bytes, MailOrigin]]
) -> int:
    """Handle one mail as the daemon would, deliver what it queued, print the end.

    take gives the mail; a LookupError from it is the user's error.
    """
    from maild.runtime import (
        daemon,  # the daemon's modules: only for commands that handle mail
    )

    parts = daemon.build(settings, parse_workers=1)
    try:
        try:
            raw, origin = take(parts.store)
        except LookupError as exc:
            print(f"maild: {exc.args[0]}", file=sys.stderr)
            return 1
        disposition = daemon.SafeHandler(parts, lambda: None).handle(raw, origin)
        parts.outbox.deliver_due()
    finally:
        parts.close()
    print(disposition.value)
    return 0


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Columns of at most 60 characters, but the last: nothing follows it (a
    reason, a subject), so it is written whole."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths[:-1]] + widths[-1:]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    print(header.rstrip())
    for row in cells:
        line = "  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True))
        print(line.rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return _printable(" ".join(str(value).split()))
