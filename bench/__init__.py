"""maild benchmarks: intake throughput, time to acknowledge, cost at scale.

`python -m bench` runs the intake benchmarks (see `python -m bench --help` and
the README's "Benchmarks" section): it starts its own Dovecot, SMTP sink and
daemons on 127.0.0.1 and writes bench/out/results.json. Other modules here
may be run on their own (`python -m bench.sla_scan`).
"""
