"""Mail in, step 1 (IMAP): fetch each inbox mail, hand it over, then move it. I/O.

The intake reads the configured inbox with `BODY.PEEK[]` (never sets \\Seen),
hands every mail in UID order to a `MailHandler`, and only after the handler
has committed and returned a disposition moves the mail to the done or the
quarantine folder (MOVE, else COPY + \\Deleted + UID EXPUNGE of that UID). A
crash between commit and move leaves the mail in the inbox: the handler sees
the same (UIDVALIDITY, UID) again and must treat it as a replay. New mail is
awaited with IDLE where offered, else by polling; a lost connection is
re-opened with capped exponential backoff.

The connection is TLS from the start (`tls`), or plain upgraded by STARTTLS
(`starttls`), and the server's certificate is checked against the system's
CAs and `ca_file`'s. With `auth = "oauth2"` the login is SASL XOAUTH2 with a
token from a TokenSource; a refused token is renewed once and tried again,
and a session is ended and opened anew before its token lapses (Microsoft 365
ends a session whose token has expired), between two mails, never during one.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final, assert_never

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from maild.adapters.oauth2 import TokenSource
from maild.adapters.tls import client_context, refusal
from maild.app.ports import MailHandler
from maild.config import AuthMethod, ImapSettings
from maild.domain import MailDisposition, MailOrigin
from maild.errors import (
    ConfigError,
    MailboxUnavailable,
    MaildError,
    TokenUnavailable,
    TransientError,
)

log = logging.getLogger(__name__)

# OSError covers socket.timeout, ssl.SSLError and ConnectionError; every
# imapclient exception derives from imaplib.IMAP4.error.
_IMAP_ERRORS: Final = (imaplib.IMAP4.error, OSError)
_BATCH: Final = 50  # UIDs per FETCH of sizes
_FETCH_BYTES: Final = 16 * 1024 * 1024  # bodies per FETCH, at least one mail
_BACKOFF_START: Final = 1.0
_BACKOFF_MAX: Final = 60.0
_IDLE_CHECK_SECONDS: Final = 1.0  # how soon a stop request is noticed
_DELETED: Final = b"\\Deleted"
# A mail over max_mail_bytes is fetched by the start of its header only.
_HEAD_ITEM: Final = "BODY.PEEK[HEADER]<0.65536>"
_HEAD_KEY: Final = b"BODY[HEADER]<0>"
OAUTH2_REFUSED: Final = (
    " with a fresh access token: the token is valid, so the mailbox does not "
    "let this application in (Microsoft 365: the service principal and "
    "Add-MailboxPermission, README)"
)


@dataclass(frozen=True, slots=True)
class Folders:
    """The configured folders, named as the server spells them."""

    inbox: str
    done: str
    quarantine: str


def server_folder(name: str, separator: str | None, prefix: str = "") -> str:
    """Map a configured name ("maild/done") to the server's hierarchy."""
    if name.upper() == "INBOX":
        return "INBOX"
    mapped = name.replace("/", separator) if separator else name
    return mapped if mapped.startswith(prefix) else prefix + mapped


def folder_parents(folder: str, separator: str | None) -> list[str]:
    """Return folder's ancestors and folder itself, outermost first."""
    if not separator:
        return [folder]
    parts = folder.split(separator)
    return [separator.join(parts[: i + 1]) for i in range(len(parts)) if parts[i]]


def size_groups(sized: Sequence[tuple[int, int]], limit: int) -> Iterator[list[int]]:
    """Group (uid, size) pairs in order so a group's sizes stay under limit."""
    group: list[int] = []
    total = 0
    for uid, size in sized:
        if group and total + size > limit:
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


class ImapIntake:
    """Reads one IMAP inbox and hands its mail to a MailHandler."""

    def __init__(
        self,
        settings: ImapSettings,
        handler: MailHandler,
        *,
        idle_renew_seconds: float = 300.0,
        timeout_seconds: float = 30.0,
        max_mail_bytes: int | None = None,
        prepare: Callable[[bytes], None] | None = None,
        prepare_ahead: int = 1,
        tokens: TokenSource | None = None,
        heartbeat: Callable[[float], None] | None = None,
        on_login: Callable[[], None] | None = None,
    ) -> None:
        if settings.auth is AuthMethod.OAUTH2 and tokens is None:
            raise ValueError("auth = oauth2 needs a TokenSource")
        self._tokens = tokens  # the access tokens of an OAuth2 login
        self._login_due: float | None = None  # monotonic: log in anew by then
        # heartbeat(s): "well now, again within s seconds" (runtime.watchdog);
        # on_login: the mailbox was logged in (readiness, reconnections).
        self._heartbeat = heartbeat or _ignore
        self._on_login = on_login or (lambda: None)
        self._settings = settings
        self._prepare = prepare  # starts on the next mails while one is handled
        self._ahead = max(1, prepare_ahead)
        self._max_bytes = max_mail_bytes  # larger announced: body never fetched
        self._handler = handler
        self._idle_renew = idle_renew_seconds  # RFC 2177: renew before 29 min
        self._timeout = timeout_seconds  # a silent connection counts as lost
        self._source = f"imap:{settings.username}/{settings.inbox}"
        self._where = f"{settings.host}:{settings.port}"
        self._client: IMAPClient | None = None
        self._folders = Folders(settings.inbox, "", "")
        self._uidvalidity = 0
        self._stop = threading.Event()  # a stop request ends a batch between mails
        self.has_idle = False
        self.has_move = False

    def run(self, stop: threading.Event) -> None:
        """Handle mail until stop is set; ConfigError is fatal, the rest retried."""
        self._stop = stop
        delay = _BACKOFF_START
        try:
            while not stop.is_set():
                if self._cycle(stop, delay):
                    delay = _BACKOFF_START
                else:
                    self._heartbeat(delay)
                    stop.wait(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
        finally:
            self.close()

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Connect if needed, handle every mail in the inbox now, return the count.

        Once stop is set, the mail in hand is finished and the rest left for
        later. Raises MailboxUnavailable, or the handler's TransientError (the
        mail stays in the inbox), or ConfigError when the server cannot move mail.
        """
        if stop is not None:
            self._stop = stop
        if self._client is not None and self._is_login_due():
            log.info("imap %s: the access token is due for renewal; logging in "
                     "again", self._where)  # fmt: skip
            self.close()
        client = self._connected()
        handled = 0
        while not self._stop.is_set() and self._select(client):
            count = self._handle_all(client)
            handled += count
            if not count:
                break  # mail that cannot be fetched: do not spin on it
        return handled

    def check_login(self) -> None:
        """Connect, log in and out once (`maild check-config`); raise as run_once."""
        try:
            self._connected()
        finally:
            self.close()

    @property
    def is_logged_in(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        """Log out and drop the connection; run_once reconnects."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except _IMAP_ERRORS:
            _shutdown(client)

    def _cycle(self, stop: threading.Event, delay: float) -> bool:
        try:
            self.run_once()
            self._wait_for_mail(stop)
        except MailboxUnavailable as exc:
            log.warning("imap %s lost (%s); retry in %.0f s", self._where, exc, delay)
            self._drop()
            return False
        except TokenUnavailable as exc:
            log.warning("imap %s: no access token (%s); retry in %.0f s",
                        self._where, exc, delay)  # fmt: skip
            self._drop()
            return False
        except TransientError as exc:
            log.warning("imap mail kept in inbox (%s); retry in %.0f s", exc, delay)
            return False
        return True

    def _wait_for_mail(self, stop: threading.Event) -> None:
        if self.has_idle:
            self._idle(self._connected(), stop)
        else:
            self._heartbeat(self._settings.poll_seconds)
            stop.wait(self._settings.poll_seconds)

    def _is_login_due(self) -> bool:
        return self._login_due is not None and time.monotonic() >= self._login_due

    def _idle(self, client: IMAPClient, stop: threading.Event) -> None:
        renew_at = time.monotonic() + self._idle_renew
        if self._login_due is not None:
            renew_at = min(renew_at, self._login_due)  # run_once logs in anew
        with self._io():
            client.idle()
            is_news_read = has_unread(client)  # e.g. an EXISTS behind "+ idling"
        while not is_news_read and not stop.is_set() and time.monotonic() < renew_at:
            started = time.monotonic()
            self._heartbeat(_IDLE_CHECK_SECONDS)
            with self._io():
                responses = client.idle_check(timeout=_IDLE_CHECK_SECONDS)
            if any(_is_untagged(r, b"BYE") for r in responses):
                raise MailboxUnavailable(f"{self._settings.host}: server said BYE")
            if any(_is_untagged(r, b"EXISTS") for r in responses):
                break
            if not responses and time.monotonic() - started < _IDLE_CHECK_SECONDS / 2:
                break  # readable, nothing read: end of stream? idle_done tells
        with self._io():
            client.idle_done()  # a dead connection fails here or at the SELECT

    def _select(self, client: IMAPClient) -> int:
        """Select the inbox afresh and return how many mails it holds.

        A new mail announced during a SEARCH, FETCH or MOVE would not be
        announced again in IDLE; a SELECT as the last command before IDLE
        leaves no such gap.
        """
        with self._io():
            selected = client.select_folder(self._folders.inbox)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        if self._uidvalidity and uidvalidity != self._uidvalidity:
            log.warning("imap UIDVALIDITY was %s, is %s", self._uidvalidity,
                        uidvalidity)  # fmt: skip
        self._uidvalidity = uidvalidity
        return int(selected[b"EXISTS"])

    def _handle_all(self, client: IMAPClient) -> int:
        with self._io():
            uids = sorted(client.search("ALL"))
        return sum(self._handle_batch(client, uids[i : i + _BATCH])
                   for i in range(0, len(uids), _BATCH))  # fmt: skip

    def _handle_batch(self, client: IMAPClient, uids: list[int]) -> int:
        with self._io():
            found = client.fetch(uids, ["RFC822.SIZE"]) if uids else {}
        sizes = {uid: int(item[b"RFC822.SIZE"]) for uid, item in found.items()}
        handled = 0
        for group in size_groups(
            [(u, sizes[u]) for u in uids if u in sizes], _FETCH_BYTES
        ):
            with self._io():
                bodies = self._fetch(client, group, sizes)
            # expunged by someone else since the search: not there
            fetched = [(uid, bodies[uid]) for uid in group if uid in bodies]
            handled += self._handle_group(client, fetched, sizes)
            if self._stop.is_set():
                break  # stopping: the rest stays in the inbox
        return handled

    def _handle_group(
        self,
        client: IMAPClient,
        fetched: list[tuple[int, bytes]],
        sizes: dict[int, int],
    ) -> int:
        """Handle fetched mails in order, then move them out, one MOVE per folder.

        Each mail is committed before the next is read; moving them together
        afterwards saves a round trip per mail. A crash before the move leaves
        committed mails in the inbox, which the handler recognises and does
        not apply again.
        """
        finished: dict[str, list[int]] = {}
        for uid, raw in fetched[1 : self._ahead]:
            self._prepare_next(uid, raw, sizes)
        try:
            for index, (uid, raw) in enumerate(fetched):
                if self._stop.is_set():
                    break  # stopping: the rest stays in the inbox
                if index + self._ahead < len(fetched):
                    self._prepare_next(*fetched[index + self._ahead], sizes)
                self._heartbeat(0)
                folder = self._handle_one(uid, raw, sizes[uid])
                finished.setdefault(folder, []).append(uid)
        finally:
            self._move(client, finished)
        return sum(len(moved) for moved in finished.values())

    def _prepare_next(self, uid: int, raw: bytes, sizes: dict[int, int]) -> None:
        """Let the handler start on the next mail while this one is applied."""
        if self._prepare is None:
            return
        if self._max_bytes is None or sizes[uid] <= self._max_bytes:
            self._prepare(raw)  # a mail over the limit is refused by its size

    def _fetch(
        self, client: IMAPClient, group: list[int], sizes: dict[int, int]
    ) -> dict[int, bytes]:
        """Fetch the mails of group; one announced over the limit by its header.

        The handler refuses such a mail by its announced size (origin.size)
        and reads whom to tell from the header: the body is never fetched.
        """
        limit = self._max_bytes
        over = [u for u in group if limit is not None and sizes[u] > limit]
        under = [u for u in group if limit is None or sizes[u] <= limit]
        bodies = client.fetch(under, ["BODY.PEEK[]"]) if under else {}
        fetched = {u: a[b"BODY[]"] for u, a in bodies.items() if b"BODY[]" in a}
        heads = client.fetch(over, [_HEAD_ITEM]) if over else {}
        # No header in the answer still leaves the size to refuse the mail by.
        fetched.update((u, a.get(_HEAD_KEY, b"")) for u, a in heads.items())
        return fetched

    def _handle_one(self, uid: int, raw: bytes, size: int) -> str:
        """Hand one mail over; return the folder it goes to once committed."""
        origin = MailOrigin(
            source=self._source, uidvalidity=self._uidvalidity, uid=uid, size=size
        )
        disposition = self._handler.handle(raw, origin)  # commits; may defer
        match disposition:
            case MailDisposition.DONE:
                return self._folders.done
            case MailDisposition.QUARANTINED:
                return self._folders.quarantine
            case _:
                assert_never(disposition)

    def _move(self, client: IMAPClient, finished: dict[str, list[int]]) -> None:
        for folder, uids in finished.items():
            with self._io():
                if self.has_move:
                    client.move(uids, folder)
                else:
                    client.copy(uids, folder)
                    client.add_flags(uids, [_DELETED], silent=True)
                    client.uid_expunge(uids)  # only these UIDs, not others' \Deleted
            log.info("imap uids=%s/%s moved to %s", self._uidvalidity,
                     _uid_set(uids), folder)  # fmt: skip

    def _connected(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        s = self._settings
        context = client_context(s.ca_file) if s.tls or s.starttls else None
        with self._io():
            client = IMAPClient(
                s.host, s.port, ssl=s.tls, ssl_context=context, timeout=self._timeout
            )
        _quiet_imaplib(client)
        try:
            if s.starttls:
                self._start_tls(client, context)
            self._set_up(client)
        except MaildError:
            _shutdown(client)
            raise
        self._client = client
        self._on_login()
        return client

    def _start_tls(self, client: IMAPClient, context: ssl.SSLContext | None) -> None:
        with self._io():
            if not client.has_capability("STARTTLS"):
                raise ConfigError("imap.starttls", f"{self._where} does not offer "
                                  "STARTTLS: set tls = true for port 993")  # fmt: skip
            client.starttls(context)

    def _set_up(self, client: IMAPClient) -> None:
        s = self._settings
        try:
            with self._io():
                if self._tokens is not None:
                    self._oauth2_login(client, self._tokens)
                else:
                    client.login(s.username, s.password)
        except MailboxUnavailable as exc:
            if isinstance(exc.__cause__, LoginError):
                log.error("imap %s refused the login of %s%s", s.host, s.username,
                          OAUTH2_REFUSED if self._tokens else "")  # fmt: skip
            raise
        with self._io():
            self._check_capabilities(set(client.capabilities()))
            self._folders = self._prepare_folders(client)
        log.info("imap %s ready, idle=%s move=%s", self._where, self.has_idle,
                 self.has_move)  # fmt: skip

    def _oauth2_login(self, client: IMAPClient, tokens: TokenSource) -> None:
        """XOAUTH2 with the cached token; once more with a new one if refused."""
        user = self._settings.username
        token = tokens.token()
        try:
            client.oauth2_login(user, token.value)
        except LoginError:
            log.warning("imap %s refused the access token of %s; getting a new "
                        "one", self._settings.host, user)  # fmt: skip
            token = tokens.renew()
            client.oauth2_login(user, token.value)
        self._login_due = tokens.monotonic_deadline(token)

    def _check_capabilities(self, capabilities: set[bytes]) -> None:
        self.has_idle = b"IDLE" in capabilities
        self.has_move = b"MOVE" in capabilities
        if not self.has_move and b"UIDPLUS" not in capabilities:
            raise ConfigError("imap.host", f"{self._where} has neither MOVE nor "
                              "UIDPLUS: cannot remove one mail alone")  # fmt: skip

    def _prepare_folders(self, client: IMAPClient) -> Folders:
        separator, prefix = _hierarchy(client)
        s = self._settings
        names = (s.inbox, s.done_folder, s.quarantine_folder)
        folders = Folders(*(server_folder(n, separator, prefix) for n in names))
        for folder in (folders.done, folders.quarantine):
            for name in folder_parents(folder, separator):
                if name.upper() != "INBOX" and not client.folder_exists(name):
                    client.create_folder(name)
                    log.info("imap folder %s created", name)
        return folders

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _shutdown(client)

    @contextmanager
    def _io(self) -> Iterator[None]:
        try:
            yield
        except ssl.SSLCertVerificationError as exc:
            why = refusal(exc, self._where, "imap.ca_file") or str(exc)
            log.error("imap %s", why)
            raise MailboxUnavailable(why) from exc
        except _IMAP_ERRORS as exc:
            raise MailboxUnavailable(f"{self._settings.host}: {exc}") from exc


def _hierarchy(client: IMAPClient) -> tuple[str | None, str]:
    """Return the server's separator and personal namespace prefix."""
    if client.has_capability("NAMESPACE"):
        personal = client.namespace().personal
        if personal:
            prefix, separator = personal[0]
            return separator or None, prefix
    listed = client.list_folders("", "")  # LIST "" "" answers the separator
    separator = listed[0][1] if listed else None
    return (separator.decode() if isinstance(separator, bytes) else separator), ""


def _is_untagged(response: Any, kind: bytes) -> bool:
    """Tell whether an IDLE response such as (3, b"EXISTS") is of kind."""
    if not isinstance(response, tuple):
        return False
    return any(
        isinstance(part, bytes) and part.upper() == kind for part in response[:2]
    )


def has_unread(client: IMAPClient) -> bool:
    """Tell whether server lines were already read into imaplib's buffer.

    A mail that arrives between the last SELECT and IDLE is announced right
    behind the "+ idling" line; imaplib reads both into its buffer, where the
    socket poll of `idle_check` cannot see it, and the mail would wait for the
    next unrelated server line (minutes). Peeks without blocking.
    """
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):  # plain or TLS: nothing yet
        return False
    finally:
        sock.settimeout(timeout)


def _ignore(_seconds: float) -> None:
    """No watchdog: a heartbeat goes nowhere."""


def _uid_set(uids: list[int]) -> str:
    """Say a list of UIDs briefly for the log: "3", or "3..9 (5)"."""
    if len(uids) == 1:
        return str(uids[0])
    return f"{uids[0]}..{uids[-1]} ({len(uids)})"


def _shutdown(client: IMAPClient) -> None:
    with suppress(OSError):  # the connection is already gone: nothing to release
        client.shutdown()


def _quiet_imaplib(client: IMAPClient) -> None:
    """Keep imaplib from formatting what it reads, unless someone logs it.

    IMAPClient sets imaplib's debug level to 5 and routes its messages to the
    `imapclient.imaplib` logger; imaplib then builds the repr of every mail it
    fetches before the logger drops it (1 ms a 125 KB mail, most of a fetch's
    CPU). With that logger at DEBUG the trace stays as IMAPClient made it.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0
