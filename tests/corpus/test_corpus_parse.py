"""Parse step on the real-world corpus: every file is a mail or a clean rejection."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from maild.core.parse import parse_mail
from maild.domain import InboundMail
from maild.errors import MailRejected
from tests.support.corpus import corpus_files

_LINE_BREAK = re.compile(r"[\r\n\v\f\x85\u2028\u2029]")


def _check_invariants(path: Path, mail: InboundMail) -> list[str]:
    problems = []
    if "\x00" in mail.text:
        problems.append(f"{path}: NUL in text")
    if _LINE_BREAK.search(mail.subject):
        problems.append(f"{path}: line break in subject {mail.subject!r}")
    if mail.date is not None and mail.date.tzinfo is None:
        problems.append(f"{path}: naive date")
    if mail.raw_size != path.stat().st_size:
        problems.append(f"{path}: raw_size")
    return problems


def test_every_corpus_file_parses_or_is_rejected(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = corpus_files(corpus_dir)
    assert len(files) > 500  # the corpus is all there
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for path in files:
        raw = path.read_bytes()
        begun = time.perf_counter()
        try:
            mail = parse_mail(raw)
        except MailRejected as exc:
            outcomes[f"rejected: {exc.reason}: {exc}"] += 1
        else:
            outcomes["ok"] += 1
            problems += _check_invariants(path, mail)
        slowest = max(slowest, (time.perf_counter() - begun, str(path)))
    total = time.perf_counter() - started
    with capsys.disabled():
        print(f"\ncorpus: {len(files)} files in {total:.2f} s; {dict(outcomes)}")
        print(f"slowest: {slowest[1]} ({slowest[0]:.3f} s)")
    assert problems == []
    assert outcomes["ok"] >= len(files) - 5
