"""Content-addressed blob store for attachments and kept mail. I/O.

Files are named by the sha256 of their bytes, never by anything from the
mail, so an attachment name cannot become a path.

A blob is named at once (its sha256) and written, renamed into place and
flushed to disk on a thread of its own, so the handling of the mail goes on
meanwhile (file creation waits on the file system's journal while other
files are flushed), and every durable commit waits for the writes before it
(Store.transaction): nothing committed ever names a blob a power cut could
lose, and a write that fails fails that commit. A file a power cut left short
(renamed, never flushed) is written again by the next put of the same bytes:
the IMAP intake fetches the mail again, since it leaves the inbox only after
its commit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path


class BlobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._flusher: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._flushing: list[Future[None]] = []

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.directory / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store data (once) and return its sha256; wait_durable() waits for it."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        with self._lock:
            if self._flusher is None:
                self._flusher = ThreadPoolExecutor(1, thread_name_prefix="maild-blobs")
            self._flushing.append(self._flusher.submit(_write, path, data))
        return digest

    def wait_durable(self) -> None:
        """Return once every blob put so far is on disk; raise OSError if one is not."""
        with self._lock:
            flushing, self._flushing = self._flushing, []
        for future in flushing:
            future.result()

    def get(self, sha256: str) -> bytes:
        """The bytes of a blob; one still being written is waited for."""
        path = self.path_for(sha256)
        with self._lock:
            writing = list(self._flushing)  # left for the commits to check
        wait(writing)
        return path.read_bytes()

    def remove(self, sha256: str) -> int:
        """Delete a blob's file (the sweep's call); return 1 if it was there."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1

    def close(self) -> None:
        """Finish the flushes under way and stop the flushing thread."""
        with self._lock:
            flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.shutdown(wait=True)


def _write(path: Path, data: bytes) -> None:
    """Write data at path unless it is there whole, then flush it to disk."""
    folders = [path.parent]
    try:
        if path.stat().st_size == len(data):
            return
    except FileNotFoundError:
        if not path.parent.is_dir():  # new folders: their parents record them
            folders += [path.parent.parent, path.parent.parent.parent]
            path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _flush(path, folders)


def _flush(path: Path, folders: list[Path]) -> None:
    """fsync the file, then the folders that record its name."""
    for target, flags in [(path, os.O_RDONLY)] + [(f, os.O_DIRECTORY) for f in folders]:
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
