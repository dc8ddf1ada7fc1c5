"""How to use a Ray cluster: its address, and how the workers get the photos' bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.errors import BadInput


@dataclass(frozen=True)
class RayOptions:
    """`address`: HOST:PORT of the head (or "auto": the cluster this machine belongs to).

    Bytes: by default the driver reads each photo and ships its bytes to the cluster (no mounts, and the
    workers see exactly the file the driver planned). `path_map` pairs (driver prefix, worker prefix):
    photos under a driver prefix are read by the workers themselves, from a shared mount at the worker
    prefix, so their bytes never pass through the driver (docs/distributed.md weighs the two)."""

    address: str
    path_map: tuple[tuple[str, str], ...] = ()
    actors: int = 0  # embedding actors; 0: one per GPU, else one per node with CPUs
    inflight_mb: float = 256.0  # bytes the driver has shipped that no worker has decoded yet, at most

    @classmethod
    def parse(cls, address: str, path_maps: Sequence[str] = (), actors: int = 0) -> RayOptions:
        """From the command line: path maps as "DRIVER_PREFIX=WORKER_PREFIX"."""
        pairs = []
        for item in path_maps:
            src, sep, dst = item.partition("=")
            if not sep or not src or not dst:
                raise BadInput(f"--ray-path-map takes DRIVER_PREFIX=WORKER_PREFIX, not {item!r}")
            pairs.append((src.rstrip("/") or "/", dst.rstrip("/") or "/"))
        if actors < 0:
            raise BadInput(f"--ray-actors must be 0 (one per GPU or node) or more, not {actors}")
        # Longest prefix first: /photos/raw=... wins over /photos=...
        pairs.sort(key=lambda p: len(p[0]), reverse=True)
        return cls(address.strip(), tuple(pairs), actors)

    def worker_path(self, path: str) -> str | None:
        """Where a worker finds `path` on its shared mount; None: the driver ships its bytes."""
        for src, dst in self.path_map:
            if src == "/":
                return dst.rstrip("/") + path
            if path == src or path.startswith(src + "/"):
                return dst + path[len(src) :]
        return None
