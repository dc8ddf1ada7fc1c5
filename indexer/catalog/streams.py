"""Catalog reads the vector index needs at scale: counted, streamed and sampled in bounded memory.

Catalog.searchable_vectors loads every vector at once: fine for an exact index of 200k (400 MB), not
for 10M (20 GB). These stream in id order, sample, and count, with bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import func, select

from indexer.catalog.schema import OK, Embedding, Image
from indexer.catalog.store import Catalog

STREAM_CHUNK = 20_000  # rows per read: 40 MB of 512-d fp32 vectors


def searchable_count(catalog: Catalog) -> int:
    """OK images (an upper bound of the searchable ones: an OK image has an embedding of the active
    model except while `photoseek reembed` runs). Counted on ix_images_status, without the join."""
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == OK)) or 0)


def _vectors(rows: list) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    blob = b"".join(r[1] for r in rows)
    return ids, np.frombuffer(blob, dtype=np.float32).reshape(len(rows), -1)


def iter_searchable_vectors(
    catalog: Catalog, model_id: int, chunk: int = STREAM_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of the searchable images in id order, `chunk` rows at a time (keyset paging
    on the primary key: each read is a range scan, whatever the library's size)."""
    q = (
        select(Image.id, Embedding.vector)
        .join(Embedding, Embedding.content_hash == Image.content_hash)
        .where(Embedding.model_id == model_id, Image.status == OK)
        .order_by(Image.id)
        .limit(chunk)
    )
    last = -1
    while True:
        with catalog.session() as s:
            rows = s.execute(q.where(Image.id > last)).all()
        if not rows:
            return
        ids, vecs = _vectors(rows)
        last = int(ids[-1])
        yield ids, vecs


def sample_searchable_vectors(catalog: Catalog, model_id: int, m: int, seed: int = 0) -> np.ndarray:
    """About m vectors drawn uniformly from the searchable images (random ids between the first and
    the last; ids are dense, so few draws miss), for training an index without reading them all."""
    with catalog.session() as s:
        lo, hi = s.execute(select(func.min(Image.id), func.max(Image.id)).where(Image.status == OK)).one()
    if lo is None:
        return np.zeros((0, 0), dtype=np.float32)
    span = hi - lo + 1
    rng = np.random.default_rng(seed)
    wanted = np.arange(lo, hi + 1) if span <= m else np.unique(rng.integers(lo, hi + 1, int(m * 1.2)))
    parts = []
    for start in range(0, len(wanted), 500):
        _, vecs = catalog.searchable_vectors(model_id, wanted[start : start + 500].tolist())
        if len(vecs):
            parts.append(vecs)
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.concatenate(parts)
    return out[rng.permutation(len(out))[:m]] if len(out) > m else out
