"""Raw mails to the helpdesk, built with the email package, for the tests that
hand bytes to a desk: the same inputs give the same bytes on every run."""

from __future__ import annotations

import hashlib
import mimetypes
from email.message import EmailMessage

HELPDESK = "helpdesk@example.com"


def helpdesk_mail(
    sender: str, subject: str, body: str, *files: tuple[str, bytes], cc: str = ""
) -> bytes:
    """A mail from sender to the helpdesk, with files attached (name, bytes);
    its Message-ID comes from its sender, subject and body."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = HELPDESK
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    key = hashlib.sha256(f"{sender}\n{subject}\n{body}".encode()).hexdigest()[:20]
    message["Message-ID"] = f"<{key}@client>"
    message.set_content(body)
    for name, data in files:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    if files:
        message.set_boundary("maild-test-boundary")
    return message.as_bytes()
