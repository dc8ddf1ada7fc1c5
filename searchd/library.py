"""The library as searchd sees it: the catalog, a Searcher over the vector index, kept up to date.

searchd is a reader. The indexer commits rows and advances the catalog's change sequence; before a
search (at most every CATCH_UP_INTERVAL_S) and from a background thread, the library compares that
sequence with its vector index's and applies the changes. New, moved and deleted photos thus show up
within about a second of the indexer's commit, without a restart (design invariant 2).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from indexer.catalog.store import Catalog
from indexer.encoder import Encoder
from indexer.pipeline import ModelMismatch
from indexer.query import QueryError
from indexer.search import Searcher
from indexer.settings import Settings

log = logging.getLogger(__name__)

CATCH_UP_INTERVAL_S = 0.5  # a last_seq() query is ~50 µs; this bounds it under heavy query load


class Library:
    """Thread-safe; one per app. The Searcher is made when the catalog first has a model."""

    def __init__(self, settings: Settings, catalog: Catalog, encoder: Callable[[], Encoder]) -> None:
        self.settings = settings
        self.catalog = catalog
        self.encoder = encoder
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()  # guards creating the searcher and catching up
        self._checked_at = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._searcher = Searcher(settings, catalog, encoder)
        except QueryError as exc:  # an empty library: serve anyway; search says what to do
            log.info("%s", exc)

    def searcher(self) -> Searcher:
        """The Searcher, caught up with the catalog if the last check is older than the interval."""
        self.catch_up(CATCH_UP_INTERVAL_S)
        if self._searcher is None:
            raise QueryError(
                f"the library in {self.settings.data_dir} has no photos yet: run `photoseek index FOLDER`"
            )
        return self._searcher

    def catch_up(self, min_interval: float = 0.0) -> bool:
        """Apply the indexer's committed changes; True if the vector index changed."""
        if time.monotonic() - self._checked_at < min_interval:
            return False
        with self._lock:
            started = time.monotonic()
            if started - self._checked_at < min_interval:
                return False  # another thread checked while this one waited
            changed = self._catch_up_locked()
            # The check started before reading last_seq: a commit after `started` is seen next time.
            self._checked_at = started
            return changed

    def _catch_up_locked(self) -> bool:
        if self._searcher is None:
            try:
                self._searcher = Searcher(self.settings, self.catalog, self.encoder)
            except QueryError:
                return False
            return True
        if self.catalog.last_seq() == self._searcher.vectors.seq:
            return False
        active = self.catalog.active_model()
        if active != self._searcher.vectors.identity:  # `photoseek reembed` switched the library
            raise ModelMismatch(
                f"the library now uses {active.label if active else 'no model'}, but this server loaded "
                f"{self._searcher.vectors.identity.label}: restart `photoseek serve` to load the new model"
            )
        return self._searcher.catch_up()

    # -- background catch-up -------------------------------------------------------------------------
    def start_following(self, interval_s: float = 1.0) -> None:
        """Catch up every interval from a daemon thread, so an idle server is current when asked."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, args=(interval_s,), name="catch-up", daemon=True)
        self._thread.start()

    def stop_following(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _follow(self, interval_s: float) -> None:
        told = False
        while not self._stop.wait(interval_s):
            try:
                self.catch_up(interval_s / 2)
            except ModelMismatch as exc:  # searches answer 409 with this; say it once in the log
                if not told:
                    log.error("%s", exc)
                told = True
            except Exception:  # a locked or briefly unreadable catalog must not end the thread
                log.exception("catching up with the catalog failed; retrying in %.1fs", interval_s)

    # -- facts -----------------------------------------------------------------------------------------
    def model_label(self) -> str | None:
        active = self.catalog.active_model()
        return active.label if active else None

    def indexed_count(self) -> int:
        return len(self._searcher.vectors) if self._searcher else 0

    def index_seq(self) -> int:
        return self._searcher.vectors.seq if self._searcher else 0
