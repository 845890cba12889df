"""Shared pytest wiring: fixtures live in tests/support and are registered here."""

pytest_plugins = [
    "tests.support.corpus",
    "tests.support.smtp_sink",
    "tests.support.dovecot",
    "tests.support.postgres",
    "tests.support.crash",
]
