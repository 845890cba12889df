"""The sender process: the doorbell the daemon rings after each commit, and the
modules the process loads (only what sending needs: issue 14)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from maild.runtime.sender import Doorbell
from tests.support.daemon import ROOT, write_config


def test_rings_wake_the_sender_once_and_the_closed_pipe_stops_it() -> None:
    reader, writer = multiprocessing.get_context("forkserver").Pipe(duplex=False)
    bell = Doorbell(reader)
    assert bell.wait(0.05) is False  # nothing queued: the timeout passes
    for _ in range(3):  # three commits while the sender was busy
        os.write(writer.fileno(), b"\0")
    assert bell.wait(1) is True
    assert bell.wait(0) is False  # one round answers all three
    bell.set()  # the sender queued a report itself: go round again at once
    assert bell.wait(5) is True
    assert not bell.is_set()
    writer.close()  # the daemon stops (or dies)
    assert bell.wait(5) is True
    assert bell.is_set()
    reader.close()


# What the sender process must not load: intake, parsing, scheduling, the daemon,
# and OAuth2's libraries for a relay that logs in with a password.
# (mailparser_reply, a small pure-Python quote stripper, still comes in through
# config -> core.classify -> core.autoreply -> core.quotes.)
NOT_FOR_SENDING = (
    "aiosmtpd",
    "imapclient",
    "mailparser",
    "inscriptis",
    "lxml",
    "apscheduler",
    "maild.adapters.intake",
    "maild.adapters.scheduler",
    "maild.core.parse",
    "maild.runtime.daemon",
    # OAuth2's libraries: only a relay with auth = "oauth2", at its first token
    "authlib",
    "requests",
    "joserfc",
)


def loaded_of(modules: set[str]) -> set[str]:
    """The modules not for sending among modules."""
    return {
        name
        for name in modules
        for heavy in NOT_FOR_SENDING
        if name == heavy or name.startswith(f"{heavy}.")
    }


def test_the_sender_process_loads_nothing_of_intake_or_parsing(
    tmp_path: Path,
) -> None:
    config, _ = write_config(tmp_path, sink_port=None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.sender_probe", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.splitlines()[-1])
    assert child["exitcode"] == 0, done.stderr  # it built its sender and stopped
    modules = set(child["modules"])
    assert {"maild.runtime.sender_wiring", "sqlalchemy", "jinja2"} <= modules
    assert loaded_of(modules) == set()


def test_the_entry_point_a_spawned_child_imports_again_is_lean() -> None:
    # 'spawn' imports the parent's __main__ in the child: under `maild run`,
    # maild/__main__.py and the command line, which import the daemon lazily
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, maild.__main__, maild.runtime.sender;"
            "print(json.dumps(sorted(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert loaded_of(set(json.loads(done.stdout))) == set()
