"""The read stage: files in, PhotoReads out (read, hashed, decoded, fitted), in worker processes.

Decoding is the CPU indexer's other big cost next to the model (docs/design.md, performance model),
so it runs ahead of the writer in spawn-started processes, with bounded look-ahead (queue_size) so a
huge first scan keeps memory flat. Workers import only indexer.decode and indexer.procs: no torch,
no catalog. They die with the indexer (indexer/procs.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice

from indexer.decode import PhotoRead, read_photo, read_photos
from indexer.procs import die_with_parent
from indexer.scan import FileEntry
from indexer.settings import Settings

SMALL_JOB = 8  # fewer files than this are read in the writer's process: spawning costs more
MAX_CHUNK = 8  # files per worker task: amortises the pool's per-task cost on small photos


def read_many(
    entries: Iterable[FileEntry],
    count: int,
    settings: Settings,
    image_size: int,
    gpu_jpeg: bool = False,
) -> Iterator[PhotoRead]:
    """read_photo over `count` entries (an iterator is fine), in worker processes when configured.

    `gpu_jpeg`: JPEGs come back undecoded, for the writer to decode on the GPU."""
    size, mp = image_size, settings.max_megapixels
    workers = min(settings.decode_workers(), count)
    if workers == 0 or count < SMALL_JOB:
        for e in entries:
            yield read_photo(e.path, size, mp, gpu_jpeg)
        return
    # A few files per task, fewer when there are few files: every worker gets a share.
    chunk = max(1, min(MAX_CHUNK, count // (4 * workers)))
    all_paths = (e.path for e in entries)
    chunks = iter(lambda: list(islice(all_paths, chunk)), [])
    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork. The
    # initializer lives in indexer.procs: one of a heavier module would make every worker import
    # torch and open_clip (~10 s and ~300 MB per worker) just to decode JPEGs.
    ctx = multiprocessing.get_context("spawn")
    init_args = (os.getpid(), settings.nice)
    with ProcessPoolExecutor(workers, ctx, initializer=die_with_parent, initargs=init_args) as pool:
        pending: dict[Future, list[str]] = {}
        limit = max(1, settings.queue_size // chunk)
        for paths in chunks:
            pending[pool.submit(read_photos, paths, size, mp, gpu_jpeg)] = paths
            if len(pending) >= limit:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                paths = pending.pop(fut)
                try:
                    yield from fut.result()
                except Exception as exc:  # a decoder that crashed its worker process: retry one by one
                    yield from _read_alone(pool, paths, size, mp, gpu_jpeg, exc)
                nxt = next(chunks, None)
                if nxt is not None:
                    pending[pool.submit(read_photos, nxt, size, mp, gpu_jpeg)] = nxt


def _read_alone(
    pool: ProcessPoolExecutor, paths: list[str], size: int, mp: float, gpu_jpeg: bool, exc: Exception
) -> Iterator[PhotoRead]:
    """A chunk whose worker crashed: each file on its own, so only the culprit is marked."""
    if len(paths) == 1:
        yield PhotoRead(paths[0], 0, 0.0, error=f"decoder crashed ({type(exc).__name__})")
        return
    for p in paths:
        try:
            yield pool.submit(read_photo, p, size, mp, gpu_jpeg).result()
        except Exception as again:
            yield PhotoRead(p, 0, 0.0, error=f"decoder crashed ({type(again).__name__})")
