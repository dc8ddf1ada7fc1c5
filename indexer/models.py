"""The one place models are loaded and let go: CLIP towers, the VQGAN, anything big.

Each model sits under a key ("clip:toy@cpu", "vqgan:tiny@cpu"). `get` loads it on first use, under
that key's own lock (a VQGAN loading does not hold up a text query), and remembers when it was last
asked for. `unload_idle` drops what has not been used for its idle time and hands the memory back to
the system: a NAS indexes in bursts, and a ViT-B holds ~0.6 GB that a quiet watcher does not need for
days. Whoever runs a loop calls it (the watcher's housekeeping, searchd's catch-up thread).

A caller never keeps a model across calls: it asks the cache each time, so an unload really frees.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: Any = None
    idle_unload_s: float = 0.0  # 0: keep for good
    last_used: float = 0.0
    on_unload: Callable[[Any], None] | None = None


class ModelCache:
    def __init__(self, idle_unload_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_unload_s = idle_unload_s  # the default for keys that do not give their own
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()  # guards _slots itself, never held while loading
        self.loads: Counter[str] = Counter()  # key -> times loaded (status and tests read it)

    def _slot(self, key: str) -> _Slot:
        with self._lock:
            return self._slots.setdefault(key, _Slot(idle_unload_s=self.idle_unload_s))

    def get(
        self,
        key: str,
        load: Callable[[], T],
        idle_unload_s: float | None = None,
        on_unload: Callable[[T], None] | None = None,
    ) -> T:
        """The model under `key`, loading it with `load()` if it is not in memory."""
        slot = self._slot(key)
        with slot.lock:
            if idle_unload_s is not None:
                slot.idle_unload_s = idle_unload_s
            if on_unload is not None:
                slot.on_unload = on_unload
            if slot.model is None:
                started = time.monotonic()
                slot.model = load()
                self.loads[key] += 1
                log.info("loaded %s in %.1fs", key, time.monotonic() - started)
            slot.last_used = self._clock()
            return slot.model

    def put(self, key: str, model: T, idle_unload_s: float = 0.0) -> T:
        """Hand the cache a model that is already loaded (a test's session encoder, say)."""
        slot = self._slot(key)
        with slot.lock:
            slot.model, slot.idle_unload_s, slot.last_used = model, idle_unload_s, self._clock()
        return model

    def peek(self, key: str) -> Any:
        """The model if it is loaded, else None; never loads and does not count as a use."""
        with self._lock:
            slot = self._slots.get(key)
        return slot.model if slot is not None else None

    def loaded(self, key: str) -> bool:
        return self.peek(key) is not None

    def unload(self, key: str) -> bool:
        slot = self._slot(key)
        with slot.lock:
            dropped = self._drop(key, slot)
        if dropped:
            release_memory()
        return dropped

    def unload_idle(self) -> list[str]:
        """Drop every model unused for longer than its idle time; the keys dropped."""
        with self._lock:
            slots = list(self._slots.items())
        dropped = []
        for key, slot in slots:
            if slot.idle_unload_s <= 0 or slot.model is None:
                continue
            if not slot.lock.acquire(blocking=False):
                continue  # being loaded or used right now: not idle
            try:
                if self._clock() - slot.last_used >= slot.idle_unload_s and self._drop(key, slot):
                    dropped.append(key)
                    log.info("%s unloaded after %.0fs idle", key, slot.idle_unload_s)
            finally:
                slot.lock.release()
        if dropped:
            release_memory()
        return dropped

    def clear(self) -> None:
        with self._lock:
            slots = list(self._slots.items())
        for key, slot in slots:
            with slot.lock:
                self._drop(key, slot)
        release_memory()

    @staticmethod
    def _drop(key: str, slot: _Slot) -> bool:
        if slot.model is None:
            return False
        model, slot.model = slot.model, None
        if slot.on_unload is not None:
            try:
                slot.on_unload(model)
            except Exception:  # an unload hook must not keep the memory (or the caller) hostage
                log.exception("unloading %s", key)
        return True


def release_memory() -> None:
    """Give freed model memory back: Python's cycles, the CUDA cache, and glibc's heap."""
    gc.collect()  # model modules hold reference cycles; free them now, not at some later GC
    torch = sys.modules.get("torch")  # only if something loaded it: never import torch to unload
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim_heap()


_libc: ctypes.CDLL | None | bool = None


def trim_heap() -> None:
    """glibc keeps freed heap pages; hand them back so RSS really drops on a small machine (malloc_trim;
    elsewhere a no-op). Cheap: searchd calls it after each burst of uploads."""
    global _libc
    if _libc is None:
        try:  # the process's own symbols, libc's among them (find_library would run ldconfig: ~40 ms)
            _libc = ctypes.CDLL(None)
        except OSError:
            _libc = False
    if _libc and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)
