"""Watching roots: inotify where it sees every change, polling where it cannot (network shares).

One native observer and one polling observer serve all roots; each root has its own watch, so a
root that goes offline is unscheduled and scheduled again when it comes back, alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from indexer.watch.events import EventQueue, RootEventHandler
from indexer.watch.mounts import needs_polling

log = logging.getLogger(__name__)

NATIVE = "native"
POLLING = "polling"


@dataclass
class RootWatch:
    observer: BaseObserver
    watch: ObservedWatch
    kind: str  # NATIVE or POLLING
    why: str  # why polling ("" for native)


class Observers:
    def __init__(
        self,
        events: EventQueue,
        poll_interval_s: float,
        force_polling: bool = False,
        skip: set[str] | None = None,
    ) -> None:
        self.events = events
        self.poll_interval_s = poll_interval_s
        self.force_polling = force_polling
        self.skip = skip or set()
        self._native: BaseObserver | None = None
        self._polling: BaseObserver | None = None
        self.watches: dict[str, RootWatch] = {}
        self._overflow = _OverflowSentinel(self._on_overflow)

    def watch(self, root: str) -> RootWatch:
        """Start watching root (a resolved path). Raises OSError if root cannot be watched at all."""
        self.unwatch(root)
        handler = RootEventHandler(root, self.events, self.skip)
        why = "force_polling is set" if self.force_polling else (needs_polling(root) or "")
        if not why:
            try:
                obs = self._native_observer()
                rw = RootWatch(obs, obs.schedule(handler, root, recursive=True), NATIVE, "")
                self.watches[root] = rw
                return rw
            except OSError as exc:
                if not os.path.isdir(root):
                    raise
                # Typically ENOSPC: more folders than fs.inotify.max_user_watches allows.
                why = (
                    f"inotify cannot watch it ({exc.strerror or exc}); "
                    "raise fs.inotify.max_user_watches to use it"
                )
        obs = self._polling_observer()
        rw = RootWatch(obs, obs.schedule(handler, root, recursive=True), POLLING, why)
        self.watches[root] = rw
        log.info("polling %s every %gs: %s", root, self.poll_interval_s, why)
        return rw

    def unwatch(self, root: str) -> None:
        rw = self.watches.pop(root, None)
        if rw is None:
            return
        with contextlib.suppress(KeyError, OSError):  # its emitter stopped when the folder vanished
            rw.observer.unschedule(rw.watch)

    def alive(self, root: str) -> bool:
        """Is root's watch still running? (An emitter stops itself when its folder vanishes.)"""
        rw = self.watches.get(root)
        return rw is not None and any(e.watch == rw.watch and e.is_alive() for e in rw.observer.emitters)

    def stop(self) -> None:
        logging.getLogger("watchdog.observers.inotify_c").removeFilter(self._overflow)
        for obs in (self._native, self._polling):
            if obs is not None:
                obs.stop()
        for obs in (self._native, self._polling):
            if obs is not None and obs.is_alive():
                obs.join(timeout=5)
        self.watches.clear()

    def _native_observer(self) -> BaseObserver:
        if self._native is None:
            self._native = Observer()
            self._native.daemon = True
            self._native.start()
            sentinel_logger = logging.getLogger("watchdog.observers.inotify_c")
            sentinel_logger.setLevel(logging.WARNING)  # the sentinel must see it even under --quiet
            sentinel_logger.addFilter(self._overflow)
        return self._native

    def _polling_observer(self) -> BaseObserver:
        if self._polling is None:
            self._polling = PollingObserver(timeout=self.poll_interval_s)
            self._polling.daemon = True
            self._polling.start()
        return self._polling

    def _on_overflow(self) -> None:
        for root, rw in list(self.watches.items()):
            if rw.kind == NATIVE:
                self.events.flag_overflow(root)


class _OverflowSentinel(logging.Filter):
    """The kernel dropped inotify events. watchdog only logs it (no event reaches handlers), so its
    log record is the signal: every natively watched root is reconciled from the disk."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self._on_overflow = on_overflow

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in record.getMessage():
            self._on_overflow()
        return True
