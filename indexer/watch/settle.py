"""Index a file only once it has stopped changing.

A photo copied onto the share over Wi-Fi grows for seconds or minutes; indexing it half-written would
record a truncated image (and redo it on the next event). A path is ready when its size and mtime
have not changed for `settle_s`. Checks are scheduled on a heap, so a burst of 100,000 files costs
two stats each, not a stat of every waiting file on every tick.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Waiting:
    root: str
    signature: tuple[int, float] | None  # (size, mtime) at the last look
    due: float  # when to look again


class SettleTracker:
    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.clock = clock
        self._waiting: dict[str, _Waiting] = {}
        self._heap: list[tuple[float, str]] = []  # (due, path); stale entries are skipped

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, path: str) -> bool:
        return path in self._waiting

    def touch(self, path: str, root: str) -> None:
        """Something happened to path: (re)start its quiet period."""
        due = self.clock() + self.settle_s
        w = self._waiting.get(path)
        if w is None:
            self._waiting[path] = _Waiting(root, _signature(path), due)
        else:
            w.root, w.signature, w.due = root, _signature(path), due
        heapq.heappush(self._heap, (due, path))

    def forget(self, path: str, is_dir: bool = False) -> None:
        self._waiting.pop(path, None)
        if is_dir:
            prefix = path.rstrip(os.sep) + os.sep
            for p in [p for p in self._waiting if p.startswith(prefix)]:
                del self._waiting[p]

    def forget_root(self, root: str) -> None:
        for p in [p for p, w in self._waiting.items() if w.root == root]:
            del self._waiting[p]

    def rename(self, src: str, dst: str, is_dir: bool) -> None:
        """A waiting file (or the waiting files of a folder) moved: they wait under the new name."""
        moves = [(src, dst)] if src in self._waiting else []
        if is_dir:
            prefix = src.rstrip(os.sep) + os.sep
            new_prefix = dst.rstrip(os.sep) + os.sep
            moves += [(p, new_prefix + p[len(prefix) :]) for p in self._waiting if p.startswith(prefix)]
        for old, new in moves:
            w = self._waiting.pop(old)
            self._waiting[new] = w
            heapq.heappush(self._heap, (w.due, new))

    def next_due(self) -> float | None:
        while self._heap and self._stale(*self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def take_ready(self, limit: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """([(root, path)] settled and ready to index, [(root, path)] vanished while waiting)."""
        now = self.clock()
        ready: list[tuple[str, str]] = []
        vanished: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now and len(ready) < limit:
            due, path = heapq.heappop(self._heap)
            if self._stale(due, path):
                continue
            w = self._waiting[path]
            sig = _signature(path)
            if sig is None:
                del self._waiting[path]
                vanished.append((w.root, path))
            elif sig == w.signature:
                del self._waiting[path]
                ready.append((w.root, path))
            else:  # still being written: look again after another quiet period
                w.signature, w.due = sig, now + self.settle_s
                heapq.heappush(self._heap, (w.due, path))
        return ready, vanished

    def _stale(self, due: float, path: str) -> bool:
        w = self._waiting.get(path)
        return w is None or w.due != due


def _signature(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime
