"""Synthetic catalogs for query benchmarks: N image rows with embeddings, no image files at all.

Rows go in through the DBAPI cursor's executemany (about 1M rows a minute here), bypassing the ORM,
into a catalog migrated to head exactly as `open_catalog` makes it, so searchd and the CLI read it
as they would a real library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.catalog import open_catalog
from indexer.catalog.store import Catalog, ModelIdentity

CHUNK = 20_000
STAMP = "2026-01-01 00:00:00.000000"  # how SQLAlchemy stores a naive DateTime in SQLite


def clustered_unit_vectors(n: int, dim: int, seed: int, per_cluster: int = 50) -> np.ndarray:
    """Unit vectors with some of CLIP's structure: many small clusters around random centres.

    Uniform random vectors in 512-d are the worst case for any approximate index (no neighbourhoods
    at all); photo embeddings cluster (bursts, similar scenes, duplicates). Here clusters of about 50
    with noise of norm 0.8 against unit centres give nearest-neighbour cosines of about 0.65. This is
    a stand-in, not real embeddings: recall on a real library must be re-measured on it (bench/).
    """
    rng = np.random.default_rng(seed)
    clusters = max(8, n // per_cluster)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        x = centres[rng.integers(0, clusters, m)]
        x = x + rng.standard_normal((m, dim), dtype=np.float32) * np.float32(0.8 / np.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def synthesize_catalog(data_dir: Path, identity: ModelIdentity, vectors: np.ndarray) -> Catalog:
    """A catalog in data_dir whose active model is `identity`, with one OK image per vector (ids 1..N)."""
    catalog = open_catalog(data_dir)
    catalog.set_active_model(identity)
    model_id = catalog.model_id(identity)
    root = catalog.ensure_root(data_dir / "photos")
    raw = catalog.engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, len(vectors), CHUNK):
            ids = range(start + 1, start + 1 + min(CHUNK, len(vectors) - start))
            cur.executemany(
                "INSERT INTO embeddings (model_id, content_hash, vector, created_at) VALUES (?, ?, ?, ?)",
                [(model_id, f"{i:064x}", vectors[i - 1].tobytes(), STAMP) for i in ids],
            )
            cur.executemany(
                "INSERT INTO images (id, root_id, path, size, mtime, content_hash, format, width, height,"
                " status, generated, indexed_at) VALUES (?, ?, ?, 1000000, 0.0, ?, 'JPEG', 4000, 3000,"
                " 'ok', 0, ?)",
                [
                    (i, root.id, f"{root.path}/{i // 1000:04d}/IMG_{i:07d}.jpg", f"{i:064x}", STAMP)
                    for i in ids
                ],
            )
        raw.commit()
    finally:
        raw.close()
    return catalog


def mixed_queries(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Queries between two stored vectors (plus a little noise): like a text query that mixes two
    concepts, they sit off the clusters, which is harder for an approximate index than a stored vector."""
    rng = np.random.default_rng(seed)
    q = vectors[rng.integers(0, len(vectors), n)] + vectors[rng.integers(0, len(vectors), n)]
    q = q + rng.standard_normal(q.shape, dtype=np.float32) * np.float32(0.05)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
