"""The approximate (IVF) vector index against the dumb oracle: exact search over the same vectors.

Catalogs are synthesised (rows + embeddings, no image files) on a small seeded clustered set.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.catalogs import STAMP, clustered_unit_vectors, mixed_queries, synthesize_catalog
from indexer.catalog.schema import REMOVED, Image
from indexer.catalog.store import ModelIdentity
from indexer.vectors import FLAT, IVF, VectorIndex, kind_for

IDENTITY = ModelIdentity("bench-model", "random", "seed0", 64)
N = 6_000
THRESHOLD = 5_000


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered_unit_vectors(N, IDENTITY.dim, seed=3)


@pytest.fixture
def catalog(tmp_path, vectors):
    cat = synthesize_catalog(tmp_path, IDENTITY, vectors)
    yield cat
    cat.close()


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return (np.argsort(-(vectors @ q), kind="stable")[:k] + 1).tolist()  # catalog ids start at 1


def recall_at(vi: VectorIndex, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    found = [len(set(vi.search(q, k)[1].tolist()) & set(exact_top(vectors, q, k))) for q in queries]
    return sum(found) / (k * len(queries))


def test_kind_follows_the_threshold():
    assert kind_for(10, 0) == FLAT  # 0 disables approximation
    assert kind_for(THRESHOLD, THRESHOLD) == FLAT
    assert kind_for(THRESHOLD + 1, THRESHOLD) == IVF


def test_approximate_recall_against_exact(tmp_path, catalog, vectors):
    vi = VectorIndex.open(catalog, tmp_path / "vectors", IDENTITY, approximate_above=THRESHOLD)
    assert vi.kind == IVF and len(vi) == N
    queries = mixed_queries(vectors, 100, seed=4)
    assert recall_at(vi, vectors, queries) >= 0.95
    # A query that is itself a stored vector finds that vector first.
    scores, ids = vi.search(vectors[41], 10)
    assert ids[0] == 42 and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_below_threshold_is_exact(tmp_path, catalog, vectors):
    vi = VectorIndex.open(catalog, tmp_path / "vectors", IDENTITY, approximate_above=N)
    assert vi.kind == FLAT
    assert recall_at(vi, vectors, mixed_queries(vectors, 20, seed=5)) == 1.0


def test_kind_survives_save_and_load(tmp_path, catalog, vectors):
    vdir = tmp_path / "vectors"
    vi = VectorIndex.open(catalog, vdir, IDENTITY, approximate_above=THRESHOLD)
    vi.save(vdir)
    again = VectorIndex.load(vdir, IDENTITY, vi.model_id, approximate_above=THRESHOLD)
    assert again is not None and again.kind == IVF and len(again) == N
    q = mixed_queries(vectors, 1, seed=6)[0]
    assert again.search(q, 10)[1].tolist() == vi.search(q, 10)[1].tolist()
    # Reopened with a higher threshold (a settings change), the saved IVF gives way to an exact index.
    flat = VectorIndex.open(catalog, vdir, IDENTITY, approximate_above=10 * N)
    assert flat.kind == FLAT and len(flat) == N
    # Back at the old threshold, the index follows again, and on catch-up too.
    assert VectorIndex.open(catalog, vdir, IDENTITY, approximate_above=THRESHOLD).kind == IVF
    flat.approximate_above = THRESHOLD
    with catalog.session() as s:
        s.get(Image, 1).status = "deleted"
        catalog.record_change(s, 1, REMOVED)
    assert flat.catch_up(catalog) and flat.kind == IVF and len(flat) == N - 1


def test_deletes_and_filters_on_ivf(tmp_path, catalog, vectors):
    vi = VectorIndex.open(catalog, tmp_path / "vectors", IDENTITY, approximate_above=THRESHOLD)
    with catalog.session() as s:
        for image_id in (42, 43):
            s.get(Image, image_id).status = "deleted"
            catalog.record_change(s, image_id, REMOVED)
    assert vi.catch_up(catalog)
    assert vi.kind == IVF and len(vi) == N - 2
    assert 42 not in vi.search(vectors[41], 10)[1].tolist()
    assert vi.vector(42) is None and vi.vector(44) is not None
    # A small filter is searched exactly among its ids, wherever they sit in the IVF lists.
    allowed = np.array([7, 42, 500, 3000, 5999], dtype=np.int64)
    scores, ids = vi.search(vectors[499], 10, allowed_ids=allowed)
    assert ids.tolist()[0] == 500 and set(ids.tolist()) == {7, 500, 3000, 5999}
    assert np.all(np.diff(scores) <= 0)


def test_growth_past_the_threshold_switches_kind(tmp_path, vectors):
    cat = synthesize_catalog(tmp_path / "small", IDENTITY, vectors[:THRESHOLD])
    try:
        vi = VectorIndex.open(cat, tmp_path / "vectors", IDENTITY, approximate_above=THRESHOLD)
        assert vi.kind == FLAT
        raw = cat.engine.raw_connection()
        try:  # more rows arrive (as the writer would add them), each with its change record
            cur = raw.cursor()
            for i in range(THRESHOLD + 1, N + 1):
                cur.execute(
                    "INSERT INTO embeddings VALUES (1, ?, ?, '2026-01-01 00:00:00.000000')",
                    (f"{i:064x}", vectors[i - 1].tobytes()),
                )
                cur.execute(
                    "INSERT INTO images (id, root_id, path, size, mtime, content_hash, status, generated,"
                    " indexed_at) VALUES (?, 1, ?, 1, 0.0, ?, 'ok', 0, '2026-01-01 00:00:00.000000')",
                    (i, f"/grown/{i}.jpg", f"{i:064x}"),
                )
                cur.execute("INSERT INTO changes (image_id, kind, at) VALUES (?, 'added', ?)", (i, STAMP))
            raw.commit()
        finally:
            raw.close()
        assert vi.catch_up(cat)
        assert vi.kind == IVF and len(vi) == N
    finally:
        cat.close()
