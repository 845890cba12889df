"""A person's data as a zip (`maild person export ADDRESS --out FILE.zip`). I/O.

The zip holds `index.json` and the bytes: `mails/<id>.eml` for each raw mail
still kept, `attachments/<sha256>` for each attachment (its name, type and
size are in the index: a name from a mail never becomes a path, in the zip
either). What it covers: every ticket that names the address (requester,
beneficiary, watcher — the Cc of the opening mail —, owner, author of an
event), whole (its history, its mails, its attachments), and every mail the
address sent that came to no such ticket. Nothing of any other ticket.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from maild.adapters.database.mail_report import show_mail
from maild.adapters.database.models import MailRow, TicketRow
from maild.adapters.database.report import iso, show_ticket
from maild.adapters.database.store import Store

Json = dict[str, Any]


def export_person(store: Store, address: str, out: Path, now: datetime) -> Json:
    """Write everything naming address to the zip out; return its index."""
    address = address.strip().lower()
    named = store.naming(address)  # as the erasure finds them
    ticket_ids, mail_ids = list(named.tickets), set(named.mails)
    with store.reading() as session:
        numbers = list(
            session.scalars(
                select(TicketRow.number)
                .where(TicketRow.id.in_(ticket_ids))
                .order_by(TicketRow.id)
            )
        )
        if ticket_ids:
            mail_ids |= set(
                session.scalars(
                    select(MailRow.id).where(MailRow.ticket_id.in_(ticket_ids))
                )
            )
    tmp = out.with_name(f".{out.name}.part")
    index: Json = {
        "address": address,
        "exported_at": iso(now),
        "tickets": [],
        "mails": [],
    }
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in numbers:
            ticket = show_ticket(store, number)
            if ticket is None:
                continue
            for attachment in ticket["attachments"]:
                attachment["file"] = _add_blob(
                    store,
                    archive,
                    f"attachments/{attachment['sha256']}",
                    attachment["sha256"],
                )
            index["tickets"].append(ticket)
        for mail_id in sorted(mail_ids):
            mail = show_mail(store, mail_id)
            if mail is None:
                continue
            mail["file"] = _add_blob(
                store, archive, f"mails/{mail_id}.eml", mail.pop("blob_sha256") or ""
            )
            for key in ("blob", "blob_kept"):
                mail.pop(key, None)  # paths of this server: none of the person's
            index["mails"].append(mail)
        archive.writestr("index.json", json.dumps(index, ensure_ascii=False, indent=2))
    tmp.replace(out)
    return index


def _add_blob(
    store: Store, archive: zipfile.ZipFile, name: str, sha256: str
) -> str | None:
    """Add a blob's bytes under name (once); None when they are no longer kept."""
    if not sha256:
        return None
    if name in archive.NameToInfo:  # an attachment two tickets share
        return name
    try:
        data = store.blobs.get(sha256)
    except (OSError, ValueError):
        return None
    archive.writestr(name, data)
    return name
