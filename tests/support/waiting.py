"""Test support: wait for something another thread or process does. No I/O.

`wait_until(probe, timeout, what)` calls probe until it returns something
true, and returns that; after timeout seconds it raises TimeoutError, saying
what was awaited. It is the tests' one polling loop (the SMTP sink's
wait_for waits on a condition variable instead), and no test synchronises by
sleeping (STYLE, Tests). A probe may raise to end the wait early: a process
that died will never open its port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.02  # seconds between two probes


def wait_until(probe: Callable[[], T], timeout: float = 30, what: str = "") -> T:
    """Return probe()'s first true result; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout} s")
        time.sleep(INTERVAL)  # polling, with a deadline
