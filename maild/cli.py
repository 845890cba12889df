"""Command line: run | check-config | db | tickets | stats | quarantine | staff |
replay. I/O.

Output meant for machines is JSON on stdout with `--json`; errors are one
line on stderr and a non-zero exit status. The commands that only read or
change the database do not import the daemon's modules (IMAP, SMTP, parsing,
templates): a supervisor's `tickets list` starts faster.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from maild.adapters.database import report
from maild.adapters.database.engine import upgrade
from maild.adapters.database.staff import ROLES, add_staff, list_staff, remove_staff
from maild.adapters.database.store import Store, open_store
from maild.config import Settings, config_path, load_settings
from maild.core.addresses import normalize_address
from maild.domain import MailOrigin, TicketState
from maild.errors import ConfigError, MaildError

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the maild command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
        return int(args.func(settings, args))
    except ConfigError as exc:
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
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daemon").set_defaults(func=_run)
    commands.add_parser("check-config", help="validate the configuration").set_defaults(
        func=_check_config
    )
    db = commands.add_parser("db", help="database schema").add_subparsers(
        required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="migrate to the newest schema").set_defaults(
        func=_db_upgrade
    )
    tickets = commands.add_parser(
        "tickets", help="list and show tickets"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = tickets.add_parser("list", help="list tickets")
    listing.add_argument("--status", choices=[s.value for s in TicketState])
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
    return parser


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


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def _tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings, migrate=True)
    status = TicketState(args.status) if args.status else None
    rows = report.list_tickets(store, status)
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
    for key in (
        "number",
        "type",
        "status",
        "subject",
        "urgency",
        "owner",
        "created_at",
        "callback_due_at",
    ):
        print(f"{key:16} {ticket[key] if ticket[key] is not None else '-'}")
    print(f"{'requester':16} {ticket['requester']['address']}")
    print(f"{'beneficiary':16} {ticket['beneficiary']['address']}")
    print()
    print(ticket["description"])
    print()
    _print_table(ticket["events"], ("at", "kind", "actor", "text"))
    return 0


def _stats(settings: Settings, _args: argparse.Namespace) -> int:
    _print_json(report.stats(open_store(settings, migrate=True)))
    return 0


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
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return " ".join(str(value).split())
