"""What runs on the Ray workers: read tasks (decode and fit photos) and embedding actors (the model).

Read tasks are plain Ray tasks: Ray runs them again elsewhere when their worker process or node dies.
Embedding actors are restarted likewise, and their calls retried; each call answers with the identity
of the model that made its vectors, so the driver can refuse a worker with another model, even one
that came back after a restart on another node. Workers import no catalog and write nothing.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np
import ray

from indexer.catalog.store import ModelIdentity
from indexer.decode import PhotoRead, decode_read, read_photo
from indexer.settings import Settings

READ_RETRIES = 3  # after a worker or node died under it; a file that crashes its decoder each time is
# then read on its own, so only the culprit is marked (stage.py)


@dataclass
class Item:
    """One file of a read task: its bytes (shipped by the driver), or where the worker can read it."""

    path: str  # the driver's path: the catalog's
    size: int
    mtime: float
    data: bytes | None = None
    worker_path: str | None = None  # on a shared mount (RayOptions.path_map)
    error: str | None = None  # the driver could not read it: nothing to do but say so


@dataclass(frozen=True)
class Worker:
    """Where an actor runs, and what it loaded."""

    node_id: str
    label: str  # host name or IP, and a short node id: what progress and summaries show
    pid: int
    identity: ModelIdentity
    device: str


def here() -> tuple[str, str]:
    node_id = ray.get_runtime_context().get_node_id()
    return node_id, f"{socket.gethostname()}/{node_id[:6]}"


@ray.remote(num_cpus=1, max_retries=READ_RETRIES)
def read_batch(
    items: list[Item], model_size: int, max_megapixels: float
) -> tuple[list[PhotoRead], np.ndarray]:
    """Decode and fit a batch: (reads without pixels, the pixels of the reads without an error, stacked).

    The reads go back to the driver (a few hundred bytes each); the pixels stay in this node's object
    store until the actor that embeds them fetches them (the driver never holds them)."""
    reads: list[PhotoRead] = []
    for it in items:
        if it.error is not None:
            reads.append(PhotoRead(it.path, it.size, it.mtime, error=it.error))
        elif it.data is not None:
            reads.append(
                decode_read(PhotoRead(it.path, it.size, it.mtime), it.data, model_size, max_megapixels)
            )
        else:
            assert it.worker_path is not None
            r = read_photo(it.worker_path, model_size, max_megapixels)
            # The row keeps the driver's path and time: the next plan compares its own stat with them (a
            # share may report times at another resolution; a file changed since differs in size or time).
            r.path, r.mtime = it.path, it.mtime
            reads.append(r)
    ok = [r for r in reads if r.error is None]
    pixels = np.stack([r.pixels for r in ok]) if ok else np.zeros((0, model_size, model_size, 3), np.uint8)
    for r in ok:
        r.pixels = None
    return reads, pixels


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Embedder:
    """The library's model on one node: loaded through a catalog-less Library, as every process loads it."""

    def __init__(self, settings: Settings) -> None:
        from indexer.library import Library

        self.library = Library.models_only(settings)
        self.encoder = self.library.encoder()
        self.library.images_only()
        node_id, label = here()
        self.worker = Worker(node_id, label, os.getpid(), self.encoder.identity, self.encoder.device)

    def describe(self) -> Worker:
        return self.worker

    def embed(self, pixels: np.ndarray, keep: list[int]) -> tuple[np.ndarray, Worker]:
        """Unit vectors of pixels[keep], and who made them."""
        return self.encoder.encode_pixels(pixels[keep]), self.worker
