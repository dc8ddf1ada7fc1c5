"""Switch a library to another model: embed every photo's content with it, then make it active.

The old model's embeddings stay in the catalog, so switching back costs nothing. Reading goes
through the writer's read stage (worker processes), one file per content: duplicates share a vector;
or, with a Ray cluster (indexer/distributed/), reading and embedding happen there. Each batch's
embeddings are committed as they come, so an interrupted re-embed resumes where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from indexer.catalog import embeddings, images
from indexer.catalog.store import utcnow
from indexer.scan import FileEntry
from indexer.writer.read import read_many

if TYPE_CHECKING:
    from indexer.distributed.stage import RayStage
    from indexer.library import Library


def reembed(library: Library, progress: bool = False, cluster: RayStage | None = None) -> tuple[int, int]:
    """Embed with the library's settings.model; returns (embedded, failed). Files that cannot be read
    any more keep their old embeddings only. Hold the writer lock. `cluster`: read and embed there (it
    is closed at the end)."""
    catalog, settings = library.catalog, library.settings
    encoder = library.encoder()
    model_id = catalog.model_id(encoder.identity)
    assert model_id is not None
    catalog.remember_spec(model_id, settings.model)
    with catalog.session() as s:
        done = embeddings.embedded_contents(s, model_id)
        rows = images.searchable_by_content(s)
    todo: dict[str, str] = {}
    for h, path in rows:
        if h not in done:
            todo.setdefault(h, path)  # one file per content
    entries = [FileEntry(p, 0, 0.0) for p in todo.values()]
    embedded = failed = 0
    batch: list = []
    bar = tqdm(total=len(entries), unit="img", disable=not progress, desc="re-embedding")

    def flush() -> None:
        nonlocal embedded
        if not batch:
            return
        vecs = encoder.encode_pixels(np.stack([r.pixels for r in batch]))
        with catalog.session() as s:
            vectors = {r.content_hash: v for r, v in zip(batch, vecs, strict=True)}
            embeddings.put_embeddings(s, model_id, vectors, utcnow())
        embedded += len(batch)
        bar.update(len(batch))
        batch.clear()

    if cluster is not None:
        try:
            embedded, failed = _on_cluster(cluster, entries, encoder, model_id, library, bar)
        finally:
            cluster.close()
    else:
        for r in read_many(entries, len(entries), settings, encoder.image_size):
            if r.error is not None:
                failed += 1
                bar.update(1)
                continue
            batch.append(r)
            if len(batch) >= settings.batch_size:
                flush()
        flush()
    bar.close()
    catalog.set_active_model(encoder.identity)  # records a change for every image: readers rebuild
    return embedded, failed


def _on_cluster(
    cluster: RayStage, entries: list[FileEntry], encoder, model_id: int, library: Library, bar
) -> tuple[int, int]:
    """Read and embed on the cluster, committing each batch's vectors here: (embedded, failed)."""
    embedded = failed = 0

    def every_read(reads: list) -> list:
        return [r for r in reads if r.error is None]  # already one file per content

    batches = cluster.embedded(iter(entries), encoder.identity, encoder.image_size, every_read, bar)
    for reads, vectors in batches:
        with library.catalog.session() as s:
            embeddings.put_embeddings(s, model_id, vectors, utcnow())
        embedded += len(vectors)
        failed += sum(r.error is not None for r in reads)
        bar.update(len(reads))
    return embedded, failed
