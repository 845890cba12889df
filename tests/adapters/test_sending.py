"""The sender's doorbell: the pipe the daemon rings after each commit."""

from __future__ import annotations

import multiprocessing
import os

from maild.runtime.sender import Doorbell


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
