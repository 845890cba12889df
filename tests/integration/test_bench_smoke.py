"""The benchmark runs end to end: 50 mails in CI; `python -m bench --quick`
(opt-in: -m slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

FIFTY = ["--mails", "50", "--seconds", "2", "--scale-tickets", "2000"]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(FIFTY, id="fifty-mails"),
        pytest.param(["--quick"], id="quick", marks=pytest.mark.slow),
    ],
)
def test_the_bench_measures_every_phase(tmp_path: Path, options: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *options, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    corpus = results["corpus"]
    scale = results["scale"]["sqlite"]
    for run in (results["throughput"]["sqlite"], scale["empty"], scale["run"]):
        assert run["counts"]["tickets"] == corpus["new"]
        assert run["counts"]["mails_quarantined"] == 0
        assert run["left_in_inbox"] == 0
        assert run["mails_per_s"] > 0
        assert run["rss"]["daemon_mib"] > 0
        assert run["list_new"]["rows"] > 0
    assert results["floor"]["mails"] == corpus["mails"]
    for path in ("imap", "smtp"):
        latency = results["latency"][path]
        assert latency["count"] == latency["mails"], latency
    assert scale["change"] == pytest.approx(
        scale["run"]["mails_per_s"] / scale["empty"]["mails_per_s"] - 1, abs=0.001
    )
    assert "throughput sqlite" in done.stdout
    assert "empty database just before -> filled" in done.stdout
