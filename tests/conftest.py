"""Shared pytest wiring: fixtures live in tests/support and are registered here.

Property tests (hypothesis) run under a profile: `dev` (25 examples) by
default, so that the unit layer stays a quick loop, and `ci` under tests/run
(HYPOTHESIS_PROFILE=ci), which tries twelve times as many. A test that sets
`max_examples` itself keeps it under both.
"""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=25)
settings.register_profile("ci", max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

pytest_plugins = [
    "tests.support.corpus",
    "tests.support.tls",
    "tests.support.token_endpoint",
    "tests.support.smtp_sink",
    "tests.support.dovecot",
    "tests.support.postgres",
]
