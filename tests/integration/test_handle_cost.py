"""`python -m bench.handle_cost` measures the real handling path, briefly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_handle_cost_handles_every_mail_and_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.handle_cost", "--mails", "30", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # a round that did not turn every mail into a ticket or an event fails
    assert done.returncode == 0, done.stdout + done.stderr
    names = r"handle \(parse included\)|parse only|deliver notifications"
    figures = re.findall(rf"^  ({names}) +min +([\d.]+)", done.stdout, re.M)
    assert [name for name, _ in figures] == [
        "handle (parse included)",
        "parse only",
        "deliver notifications",
    ]
    assert all(float(ms) > 0 for _, ms in figures)
