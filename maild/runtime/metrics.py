"""Metrics: the Prometheus endpoint of `maild run` ([metrics] listen). I/O.

Only when [metrics] is configured, on its address (127.0.0.1:9187 unless
said otherwise), in the Prometheus text format at /metrics, served by
prometheus-client's own HTTP server on a thread. What the database knows
(tickets by state, mails by outcome, outbox, quarantine, SLA) is read from
it at scrape time by a collector, so it is never out of step and survives
restarts; what only the process sees (handling time, IMAP reconnects, mails
handled since start) is kept in its registry. Names: SPEC "Production
interfaces (second wave)"; README "Metrics" has the scrape configuration and
alert rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maild.adapters.database.health import desk_figures
from maild.adapters.database.store import Store
from maild.app.ports import MailHandler
from maild.config import MetricsSettings
from maild.core.health import THRESHOLDS
from maild.domain import MailDisposition, MailOrigin, MailOutcome
from maild.errors import ConfigError, MaildError

log = logging.getLogger(__name__)


class Metrics:
    """The process's registry: its own counters and the store's collector."""

    def __init__(
        self,
        store: Store,
        is_mailbox_reached: Callable[[], bool] | None,
        roles: Callable[[], Mapping[str, bool]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        self.handling = Histogram(
            "maild_mail_handling_seconds",
            "Time to handle one mail, from its bytes to its commit",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.imap_reconnects = Counter(
            "maild_imap_reconnects",
            "Logins to the mailbox after the first (a lost connection re-opened)",
            registry=self.registry,
        )
        self.registry.register(DeskCollector(store, is_mailbox_reached, roles))
        self._logins = 0
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def mailbox_logged_in(self) -> None:
        """Count a login; every one after the first is a reconnection."""
        self._logins += 1
        if self._logins > 1:
            self.imap_reconnects.inc()

    def serve(self, settings: MetricsSettings) -> None:
        """Listen at settings' address; ConfigError naming metrics.listen if not."""
        try:
            self._server, self._thread = start_http_server(
                settings.port, settings.host, registry=self.registry
            )
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            raise ConfigError(
                "metrics.listen", f"cannot listen on {where}: {exc.strerror or exc}"
            ) from exc
        log.info("metrics at http://%s:%s/metrics", settings.host, settings.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()


class MeasuredHandler:
    """A MailHandler that times each mail and counts those handled."""

    def __init__(self, handler: MailHandler, histogram: Histogram | None) -> None:
        self._handler = handler
        self._histogram = histogram
        self.handled = 0  # since start, for systemd's STATUS line

    def handle(self, raw: bytes, origin: MailOrigin) -> MailDisposition:
        started = time.perf_counter()
        disposition = self._handler.handle(raw, origin)
        if self._histogram is not None:
            self._histogram.observe(time.perf_counter() - started)
        self.handled += 1
        return disposition


class DeskCollector(Collector):
    """Reads the desk's figures from the store at each scrape."""

    def __init__(
        self,
        store: Store,
        is_mailbox_reached: Callable[[], bool] | None,
        roles: Callable[[], Mapping[str, bool]] = dict,
    ) -> None:
        self._store = store
        self._is_mailbox_reached = is_mailbox_reached
        self._roles = roles

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        up = GaugeMetricFamily(
            "maild_database_up", "1 when the scrape could read the database"
        )
        try:
            figures = desk_figures(self._store, now, THRESHOLDS.recent)
        except (MaildError, OSError) as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _labelled(
            CounterMetricFamily, "maild_mails", "Mails taken in, by outcome",
            "outcome", {o.value: figures.mails.get(o.value, 0) for o in MailOutcome},
        )  # fmt: skip
        yield _gauge(
            "maild_mails_pending", "Mails taken in, not handled yet",
            figures.mails.get("pending", 0),
        )  # fmt: skip
        yield _labelled(
            GaugeMetricFamily, "maild_tickets", "Tickets by state", "state",
            figures.tickets,
        )  # fmt: skip
        yield _labelled(
            GaugeMetricFamily, "maild_open_tickets",
            "Tickets not closed (new, in progress, resolved), by urgency",
            "urgency", figures.open_by_urgency,
        )  # fmt: skip
        yield _gauge(
            "maild_outbox_pending", "Notifications queued, not sent yet",
            figures.outbox_pending,
        )  # fmt: skip
        oldest = figures.oldest_pending_at
        yield _gauge(
            "maild_outbox_oldest_pending_seconds",
            "Age of the oldest notification not sent yet (0: none)",
            (now - oldest).total_seconds() if oldest else 0,
        )
        yield _counter(
            "maild_outbox_failed", "Notifications given up on", figures.outbox_failed
        )
        yield _counter(
            "maild_sla_missed", "Tickets whose call-back deadline was missed",
            figures.callback_missed,
        )  # fmt: skip
        yield _counter(
            "maild_sla_met", "Tickets called back in time", figures.callback_met
        )
        yield _gauge("maild_quarantine", "Mails quarantined", figures.quarantine)
        yield _labelled(
            GaugeMetricFamily, "maild_role_held",
            "1 for each role this instance runs now (several instances: the "
            "leased imap and sla roles move between them)",
            "role", {role: int(held) for role, held in self._roles().items()},
        )  # fmt: skip
        if self._is_mailbox_reached is not None:  # [imap] configured
            yield _gauge(
                "maild_imap_connected", "1 while the mailbox is logged in",
                1 if self._is_mailbox_reached() else 0,
            )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _counter(name: str, documentation: str, value: float) -> Metric:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, int],
) -> Metric:
    family = kind(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
