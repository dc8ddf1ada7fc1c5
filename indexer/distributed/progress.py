"""Photos per second on each node of the cluster, for the progress bar and the summary."""

from __future__ import annotations

import time
from collections import Counter


class NodeRates:
    def __init__(self) -> None:
        self.started: float | None = None
        self.photos: Counter = Counter()  # node label -> photos it read and embedded
        self.shipped = 0  # bytes the driver sent to the cluster

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def add(self, label: str, photos: int) -> None:
        self.photos[label] += photos

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started is not None else 0.0

    def postfix(self) -> str:
        """What the progress bar shows after its own rate: each node's photos per second."""
        t = max(self.elapsed(), 1e-9)
        return ", ".join(f"{label} {n / t:.1f}/s" for label, n in sorted(self.photos.items()))

    def report(self, actors: int) -> str:
        t = max(self.elapsed(), 1e-9)
        total = sum(self.photos.values())
        lines = [
            f"on the Ray cluster: {total} photos read and embedded by {len(self.photos)} node(s), "
            f"{actors} embedding actor(s), in {t:.1f}s ({total / t:.1f} photos/s); "
            f"{self.shipped / 1e6:.1f} MB shipped by this machine"
        ]
        lines += [f"  {label}: {n} photos ({n / t:.1f}/s)" for label, n in sorted(self.photos.items())]
        return "\n".join(lines)
