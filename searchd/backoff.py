"""Slowing down repeated wrong tokens, per client, in bounded memory.

After FREE_FAILURES wrong tokens from one client address, that client must wait before its next
attempt: 1 s, then 2, 4, ... up to MAX_DELAY_S. An attempt made too early is answered 429 with
Retry-After and not even checked, so guessing faster gains nothing; nobody sleeps on the server, so a
guesser cannot tie up its threads either. A right token clears the client's record. At most
MAX_CLIENTS addresses are remembered (the least recently failed are forgotten first), and a record
older than FORGET_S is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 60.0
FORGET_S = 15 * 60
MAX_CLIENTS = 4096


class Backoff:
    def __init__(self, free_failures: int = FREE_FAILURES, max_clients: int = MAX_CLIENTS) -> None:
        self.free_failures = free_failures
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # failures, last failure

    def __len__(self) -> int:
        return len(self._clients)

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next attempt (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            record = self._clients.get(client)
            if record is None:
                return 0.0
            failures, last = record
            if now - last > FORGET_S:
                del self._clients[client]
                return 0.0
        return max(0.0, last + self.delay_s(failures) - now)

    def delay_s(self, failures: int) -> float:
        """How long a client must wait after its `failures`-th wrong token."""
        if failures < self.free_failures:
            return 0.0
        return min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (failures - self.free_failures))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            failures, _ = self._clients.pop(client, (0, now))
            self._clients[client] = (failures + 1, now)  # now the most recent
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
