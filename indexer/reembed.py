"""Switch a library to another model: embed every photo's content with it, then make it active.

The old model's embeddings stay in the catalog, so switching back costs nothing.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from tqdm import tqdm

from indexer.catalog.schema import OK, Embedding, Image
from indexer.catalog.store import Catalog, utcnow
from indexer.encoder import Encoder
from indexer.pipeline import read_many
from indexer.scan import FileEntry
from indexer.settings import Settings


def reembed(
    settings: Settings, catalog: Catalog, encoder: Encoder, progress: bool = False
) -> tuple[int, int]:
    """Returns (embedded, failed). Files that cannot be read any more keep their old embeddings only."""
    model_id = catalog.model_id(encoder.identity)
    catalog.remember_spec(model_id, settings.model)
    with catalog.session() as s:
        done = set(s.scalars(select(Embedding.content_hash).where(Embedding.model_id == model_id)))
        rows = s.execute(select(Image.content_hash, Image.path).where(Image.status == OK)).all()
    todo: dict[str, str] = {}
    for h, path in rows:
        if h not in done:
            todo.setdefault(h, path)  # one file per content: duplicates share the embedding
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
            for r, v in zip(batch, vecs, strict=True):
                s.merge(
                    Embedding(
                        model_id=model_id,
                        content_hash=r.content_hash,
                        vector=v.tobytes(),
                        created_at=utcnow(),
                    )
                )
        embedded += len(batch)
        bar.update(len(batch))
        batch.clear()

    for r in read_many(entries, settings, encoder.image_size):
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
