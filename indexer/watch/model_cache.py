"""The encoder, loaded on first use and let go when idle (the NAS profile's model_idle_unload_s).

A NAS has little memory and indexes in bursts: a ViT-B model holds ~0.6 GB that a quiet watcher does
not need for days. `EncoderCache` is the zero-argument encoder provider the Writer calls: it loads
under a lock on the first call after an unload and remembers when it was last asked for.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from indexer.encoder import Encoder

log = logging.getLogger(__name__)


class EncoderCache:
    def __init__(
        self,
        loader: Callable[[], Encoder],
        idle_unload_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self.idle_unload_s = idle_unload_s  # 0: keep the model loaded for good
        self._clock = clock
        self._lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._last_used = clock()
        self.loads = 0  # how many times the model was loaded (status and tests read it)

    def __call__(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                started = time.monotonic()
                self._encoder = self._loader()
                self.loads += 1
                if self.loads > 1:
                    log.info("model loaded again in %.1fs", time.monotonic() - started)
            self._last_used = self._clock()
            return self._encoder

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def unload_if_idle(self) -> bool:
        """Drop the model if it has not been used for idle_unload_s; True if it was dropped."""
        if self.idle_unload_s <= 0:
            return False
        with self._lock:
            if self._encoder is None or self._clock() - self._last_used < self.idle_unload_s:
                return False
            self._encoder = None
        _release_memory()
        log.info("model unloaded after %.0fs idle; it loads again on the next photo", self.idle_unload_s)
        return True


def _release_memory() -> None:
    gc.collect()  # the model's modules hold reference cycles; free them now, not at some later GC
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    try:  # glibc keeps freed heap pages; hand them back so RSS really drops on a small machine
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
