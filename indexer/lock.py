"""One writer per data dir: an advisory lock that dies with its process (kill -9 included)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from indexer.errors import WriterLocked

__all__ = ["WriterLock", "WriterLocked"]


class WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = path  # the data dir's writer.lock (indexer/layout.py)
        self._file: IO[str] | None = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise WriterLocked(
                f"another photoseek indexer (pid {holder}) is writing to {self.path.parent}; "
                "stop it first (`photoseek status` shows it), or use another --data-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
