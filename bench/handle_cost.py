"""`python -m bench.handle_cost`: CPU time of handling one mail, in process. I/O.

The throughput phase runs the whole daemon against Dovecot and an SMTP sink
on a 2-core machine, where a change worth 5 % drowns in the run-to-run
noise. This measures the part a code change usually touches: the bench
corpus (the same mails as the throughput phase) handed to `HandleMail.handle`
in this process, parsed in process too, on a fresh SQLite database per round.
It prints CPU milliseconds per mail (this thread's CPU time, so waiting on
fsync does not count, nor the SMTP sink, which runs in another thread) for
handling as a whole, for parsing alone, and for delivering the notifications
to the sink after each mail, as the daemon's sender is woken after each; the
lowest round is the figure to compare, since noise only ever adds time.

    .venv/bin/python -m bench.handle_cost [--mails 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import corpus
from maild.config import load_settings
from maild.core.numbering import ticket_day
from maild.core.parse import ParseLimits, parse_mail
from maild.domain import InboundMail, MailDisposition, MailOrigin
from maild.runtime import daemon
from tests.support.daemon import write_config
from tests.support.smtp_sink import SmtpSink

_LIMITS = ParseLimits()


class InProcessParser:
    """parse_mail in this process: its CPU time is counted with the rest."""

    def parse(
        self,
        raw: bytes,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> InboundMail:
        return parse_mail(raw, envelope_sender, envelope_recipients, _LIMITS)


def one_round(mails: list[bytes], sink: SmtpSink) -> tuple[float, float]:
    """Handle every mail on a fresh database, then deliver what it queued.

    Returns CPU ms per mail of the two. Raises RuntimeError unless every mail
    became a ticket or an event and every notification reached the sink: a
    round that quarantined its mails would measure the wrong path.
    """
    before = len(sink.messages)
    with tempfile.TemporaryDirectory(prefix="maild-handle-") as directory:
        config, _ = write_config(Path(directory), sink_port=sink.port)
        parts = daemon.build(load_settings(config), parse_workers=1)
        try:
            parts.service.parser = InProcessParser()
            ends, handled, delivered, sent = [], 0.0, 0.0, 0
            for uid, raw in enumerate(mails, start=1):
                started = time.thread_time()
                origin = MailOrigin("bench", uidvalidity=1, uid=uid)
                ends.append(parts.service.handle(raw, origin))
                handled += time.thread_time() - started
                # as in the daemon, whose sender is woken after every mail
                started = time.thread_time()
                sent += parts.outbox.deliver_due()
                delivered += time.thread_time() - started
        finally:
            parts.close()
    if ends != [MailDisposition.DONE] * len(mails):
        raise RuntimeError(f"not every mail was handled: {Counter(ends)}")
    if sent == 0 or len(sink.messages) - before != sent:
        raise RuntimeError(f"{sent} sent, {len(sink.messages) - before} at the sink")
    return handled * 1000 / len(mails), delivered * 1000 / len(mails)


def parse_only(mails: list[bytes]) -> float:
    started = time.thread_time()
    for raw in mails:
        parse_mail(raw, None, (), _LIMITS)
    return (time.thread_time() - started) * 1000 / len(mails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the service logs every mail at INFO
    day = ticket_day(datetime.now(UTC), "Europe/Paris")
    mails = [m.raw for m in corpus.generate(args.mails, seed=args.seed, day=day)]
    sink = SmtpSink()
    sink.start()
    try:
        rounds = [one_round(mails, sink) for _ in range(args.rounds)]
    finally:
        sink.stop()
    handled = [handle for handle, _ in rounds]
    delivered = [deliver for _, deliver in rounds]
    parsed = [parse_only(mails) for _ in range(args.rounds)]
    print(f"{args.mails} mails of the bench corpus, {args.rounds} rounds, CPU ms/mail")
    for name, values in (
        ("handle (parse included)", handled),
        ("parse only", parsed),
        ("deliver notifications", delivered),
    ):
        print(
            f"  {name:26} min {min(values):6.2f}   "
            f"median {statistics.median(values):6.2f}   max {max(values):6.2f}"
        )
    print(f"  {'handle beyond parse':26} min {min(handled) - min(parsed):6.2f}")


if __name__ == "__main__":
    main()
