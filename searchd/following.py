"""Keeping a serving library current while nobody asks: catch up with the indexer, let idle models go.

searchd is a reader. The indexer commits rows and advances the catalog's change sequence; requests
catch up at most every CATCH_UP_INTERVAL_S (Library.searcher), and this thread does it in between, so
an idle server is current when asked (docs/design.md invariant 2). The same thread unloads models
that have been idle for their time (indexer/models.py), such as the VQGAN after generation.
"""

from __future__ import annotations

import logging
import threading

from indexer.errors import ModelMismatch
from indexer.library import Library

log = logging.getLogger(__name__)

CATCH_UP_INTERVAL_S = 0.5  # a last_seq() query is ~50 µs; this bounds it under heavy query load


class Follower:
    def __init__(self, library: Library, interval_s: float = 1.0) -> None:
        self.library = library
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Follower:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="catch-up", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _follow(self) -> None:
        told = False
        while not self._stop.wait(self.interval_s):
            try:
                self.library.catch_up(self.interval_s / 2)
                self.library.models.unload_idle()
            except ModelMismatch as exc:  # searches answer 409 with this; say it once in the log
                if not told:
                    log.error("%s", exc)
                told = True
            except Exception:  # a locked or briefly unreadable catalog must not end the thread
                log.exception("catching up with the catalog failed; retrying in %.1fs", self.interval_s)
