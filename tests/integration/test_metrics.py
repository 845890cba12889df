"""The metrics endpoint of a running daemon, scraped after a burst: its counts
are those of `maild stats --json` and `maild mails list --json`."""

from __future__ import annotations

import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import start_daemon
from tests.support.smtp_sink import SmtpSink, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BURST = 12


def mail(number: int, sender: str = "marie@example.com") -> bytes:
    return (
        f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: Burst {number}\r\n"
        f"Message-ID: <burst{number}@client.example.com>\r\n\r\n"
        "Application: VPN\r\n\r\nLe VPN ne se connecte plus.\r\n"
    ).encode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_after_a_burst_equal_stats(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    port = free_port()
    daemon = start_daemon(
        tmp_path, smtp_sink.port, extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    )
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: daemon.send(mail(n)), range(BURST)))
        outsider = mail(99, "robot@service.test")
        daemon.send(outsider, sender="robot@service.test")
        wait_until(
            lambda: (
                len(daemon.maild("mails", "list", "--json")) == BURST + 1
                and daemon.maild("stats", "--json")["outbox"]["pending"] == 0
            ),
            60,
            "the burst handled and its notifications sent",
        )
        samples = scrape(port)
        stats = daemon.maild("stats", "--json")
        outcomes = Counter(
            m["outcome"] for m in daemon.maild("mails", "list", "--json")
        )
        urgencies = Counter(
            t["urgency"]
            for t in daemon.maild("tickets", "list", "--json")
            if t["status"] != "closed"
        )
    finally:
        assert daemon.stop() == 0

    for state, count in stats["backlog"].items():
        assert samples[("maild_tickets", (("state", state),))] == count
    for outcome in ("ticket", "reply", "ignored", "quarantined"):
        key = ("maild_mails_total", (("outcome", outcome),))
        assert samples[key] == outcomes.get(outcome, 0), outcome
    assert samples[("maild_mails_total", (("outcome", "ticket"),))] == BURST
    assert samples[("maild_quarantine", ())] == stats["quarantine"] == 1
    assert samples[("maild_outbox_pending", ())] == stats["outbox"]["pending"]
    assert samples[("maild_outbox_failed_total", ())] == stats["outbox"]["failed"]
    missed = sum(u["missed"] for u in stats["callback"].values())
    assert samples[("maild_sla_missed_total", ())] == missed
    assert samples[("maild_mail_handling_seconds_count", ())] == BURST + 1
    assert samples[("maild_database_up", ())] == 1
    for urgency in ("low", "medium", "high"):
        key = ("maild_open_tickets", (("urgency", urgency),))
        assert samples[key] == urgencies.get(urgency, 0), urgency
    assert sum(urgencies.values()) == BURST
    # one instance on SQLite runs every role
    for role in ("imap", "sla", "sender", "smtp_intake"):
        assert samples.get(("maild_role_held", (("role", role),))) in (1, None), role
    assert samples[("maild_role_held", (("role", "sla"),))] == 1
    assert samples[("maild_role_held", (("role", "sender"),))] == 1
