"""The exception tree: what a caller can do about each failure. No I/O."""

from __future__ import annotations

from maild.domain import MailState


class MaildError(Exception):
    """Base of every error maild raises on purpose."""


class ConfigError(MaildError):
    """Bad configuration: fatal at start, names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class MailRejected(MaildError):
    """The mail goes to quarantine with this reason."""

    reason = "rejected"


class UnparseableMail(MailRejected):
    reason = "unparseable"


class MailTooLarge(MailRejected):
    reason = "too_large"


class ParseTimeout(MailRejected):
    reason = "parse_timeout"


class LoopDetected(MailRejected):
    reason = "loop"


class UserFacingError(MaildError):
    """Refused with a reply that explains why; .template names the reason."""

    template = "error"


class UnknownCommand(UserFacingError):
    template = "unknown_command"


class PermissionDenied(UserFacingError):
    template = "permission_denied"


class InvalidTransition(UserFacingError):
    template = "invalid_transition"

    def __init__(self, state: object, event: object) -> None:
        super().__init__(f"cannot {event} a ticket that is {state}")
        self.state = state
        self.event = event


class TransientError(MaildError):
    """Try again later; not counted as an attempt on the mail."""


class MailboxUnavailable(TransientError):
    pass


class StoreUnavailable(TransientError):
    pass


class TokenUnavailable(TransientError):
    """No OAuth2 access token: the provider refused the grant or was not reached."""


class LeaseLost(StoreUnavailable):
    """This instance no longer holds the role it wrote for: the write rolled back."""


class SchemaBehind(MaildError):
    """A shared database (PostgreSQL) whose schema is not the one this maild
    needs: `maild db upgrade` migrates it; maild never does on its own."""


class InstanceConflict(MaildError):
    """Another instance stands in the way: a second one on SQLite, or an older
    one still running when the schema would change."""


class DeliveryDeferred(TransientError):
    """The relay answered 4xx or could not be reached."""


class DeliveryFailed(MaildError):
    """The relay answered 5xx: permanent."""


class MailAlreadyFinished(MaildError):
    """Another handling of this mail committed its effect first; roll back."""

    def __init__(self, mail_id: int, state: MailState) -> None:
        super().__init__(f"mail {mail_id} is already {state}")
        self.mail_id = mail_id
        self.state = state
