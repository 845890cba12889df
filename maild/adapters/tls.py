"""TLS for the mail connections (IMAP intake, SMTP relay): the client context
and why a certificate was refused, in words an admin can act on. No network I/O.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, and ca_file's beside them."""
    context = ssl.create_default_context()  # CERT_REQUIRED, host name checked
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def refusal(exc: ssl.SSLError, host: str, ca_key: str) -> str | None:
    """Say why host's certificate was refused, or None for another TLS failure."""
    if not isinstance(exc, ssl.SSLCertVerificationError):
        return None
    reason = exc.verify_message or exc.reason or str(exc)
    if "mismatch" in reason.lower() or "not valid for" in reason.lower():
        hint = "connect by a name the certificate holds"
    elif exc.verify_code in (2, 18, 19, 20, 21):  # issuer unknown or self-signed
        hint = f"set {ca_key} to the CA that signed it"
    elif exc.verify_code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        hint = "the server's certificate must be renewed"
    else:
        hint = f"check the server's certificate chain and {ca_key}"
    return f"certificate of {host} refused: {reason} ({hint})"
