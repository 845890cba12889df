"""The outbox sender's wiring: what sending builds from Settings. No loops.

The sender process (maild.runtime.sender) builds its store, renderer and
OutboxSender here, and the daemon's build() uses the same functions for the
OutboxSender of its own parts (`maild replay`, the tests). This module imports
nothing of intake, parsing or scheduling, and not the daemon, so the sender
process loads none of them: the "lean-sender" contract in pyproject.toml
checks it, and tests/adapters/test_sending.py checks the real child.
"""

from __future__ import annotations

from datetime import UTC, datetime

from maild.adapters.database.store import Store, open_store
from maild.adapters.outgoing.mime import build_message
from maild.adapters.outgoing.outbox import Flag, OutboxSender
from maild.adapters.outgoing.relay import make_mailer
from maild.adapters.templates import TEMPLATE_DIR, HelpdeskAddresses, TemplateRenderer
from maild.app.ports import Clock
from maild.app.queue_notifications import Outbound
from maild.app.record_delivery_failure import RecordDeliveryFailure
from maild.config import Settings
from maild.errors import ConfigError


def system_clock() -> datetime:
    """The wall clock, aware, in UTC: the one place the processes read time."""
    return datetime.now(UTC)


def make_renderer(settings: Settings, language: str = "") -> TemplateRenderer:
    """The notification templates of language (default: the configured one),
    the operator's folder first; ConfigError naming templates.dir if it is none."""
    helpdesk = settings.helpdesk
    override = settings.templates_dir
    if override is not None and not override.is_dir():
        raise ConfigError("templates.dir", f"no folder at {override}")
    return TemplateRenderer(
        TEMPLATE_DIR,
        language or helpdesk.language,
        helpdesk.tag,
        HelpdeskAddresses(
            helpdesk.incident_address,
            helpdesk.request_address,
            helpdesk.pool_address,
            settings.sla.timezone,
            helpdesk.name,
        ),
        override,
    )


def build_sender(settings: Settings, wakeup: Flag) -> tuple[OutboxSender, Store]:
    """The outbox sender of the sending process, with a store of its own;
    its commits leave SQLite's checkpoints to the daemon's Checkpointer."""
    store = open_store(settings, migrate=False, checkpoints=False)
    outbound = Outbound(settings, make_renderer(settings), build_message)
    return outbox_sender(settings, store, outbound, system_clock, wakeup), store


def outbox_sender(
    settings: Settings, store: Store, outbound: Outbound, clock: Clock, wakeup: Flag
) -> OutboxSender:
    """Deliver store's outbox through the configured relay (or .eml folder);
    a refused mail is recorded, and reported through outbound."""
    return OutboxSender(
        store,
        make_mailer(settings.smtp, settings.eml_dir, clock),
        settings.from_address,
        clock,
        on_failed=RecordDeliveryFailure(settings, outbound).record,
        wakeup=wakeup,
    )
