"""The approximate vector indexes (ivf: fp16 codes; ondisk: 8-bit codes)
against the dumb oracle, exact search over the catalog's vectors as they are now; and their
invariants: deletes, moves, re-adds and catch-up by the change sequence, a base that is a cache
(rebuilt when deleted or damaged), compaction by the writer and adoption by a reader.

Catalogs are synthesised (rows + embeddings, no image files) from small seeded CLIP-shaped sets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.catalogs import STAMP, synthesize_catalog
from bench.clip_like import ClipLike
from indexer import vectors_ivf
from indexer.catalog.schema import ADDED, CHANGED, MOVED, OK, REMOVED, Change, Embedding, Image
from indexer.catalog.store import ModelIdentity, utcnow
from indexer.vectors import FLAT, IVF, ONDISK, VectorIndex, kind_for

IDENTITY = ModelIdentity("bench-model", "random", "seed0", 64)
N = 20_000  # above vectors_ivf.SCAN_MIN: queries probe only part of the lists
THRESHOLD = 5_000
KINDS = {
    IVF: dict(approximate_above=THRESHOLD, ondisk_above=0),
    ONDISK: dict(approximate_above=THRESHOLD, ondisk_above=1),
}
MIN_RECALL = {IVF: 0.95, ONDISK: 0.92}  # 8-bit codes at 64-d: steps of 1/255 of each range


@pytest.fixture(scope="module")
def world() -> ClipLike:
    return ClipLike(N, IDENTITY.dim, seed=3)


@pytest.fixture(scope="module")
def vectors(world) -> np.ndarray:
    return world.vectors()


@pytest.fixture
def catalog(tmp_path, vectors):
    cat = synthesize_catalog(tmp_path, IDENTITY, vectors)
    yield cat
    cat.close()


def open_index(catalog, tmp_path, kind: str) -> VectorIndex:
    return VectorIndex.open(catalog, tmp_path / "vectors", IDENTITY, **KINDS[kind])


def catalog_now(catalog) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's data: every searchable (id, vector) of the catalog as it is now."""
    return catalog.searchable_vectors(catalog.model_id(IDENTITY))


def exact_top(catalog, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    ids, vecs = catalog_now(catalog)
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, vecs = ids[keep], vecs[keep]
    return ids[np.argsort(-(vecs @ q), kind="stable")[:k]].tolist()


def assert_exact(catalog, q: np.ndarray, got: np.ndarray, allowed: np.ndarray, k: int = 10) -> None:
    """got is the exact top k among allowed, up to fp16 ties: same length, only allowed ids, and
    the exact scores of what came back are the best k exact scores (within fp16 rounding)."""
    ids, vecs = catalog_now(catalog)
    exact = dict(zip(ids.tolist(), (vecs @ q).tolist(), strict=True))
    best = sorted((exact[i] for i in allowed.tolist() if i in exact), reverse=True)[:k]
    assert len(got) == len(best) and set(got.tolist()) <= set(allowed.tolist())
    assert np.allclose(sorted((exact[i] for i in got.tolist()), reverse=True), best, atol=2e-3)


def recall(vi: VectorIndex, catalog, queries: np.ndarray, k: int = 10) -> float:
    found = [len(set(vi.search(q, k)[1].tolist()) & set(exact_top(catalog, q, k))) for q in queries]
    return sum(found) / (k * len(queries))


def change(catalog, edits: dict[int, str], vectors: dict[int, np.ndarray] | None = None) -> None:
    """Apply edits as the writer would: rows change and each change advances the sequence."""
    with catalog.session() as s:
        for image_id, kind in edits.items():
            row = s.get(Image, image_id)
            if kind == REMOVED:
                row.status = "deleted"
            elif kind == MOVED:
                row.path = row.path.replace("IMG_", "moved/IMG_")
            elif kind == CHANGED:  # new content, new embedding (an edited photo)
                row.content_hash = f"edited{image_id:058x}"
                s.add(
                    Embedding(
                        model_id=catalog.model_id(IDENTITY),
                        content_hash=row.content_hash,
                        vector=vectors[image_id].astype(np.float32).tobytes(),
                        created_at=utcnow(),
                    )
                )
            else:  # ADDED back after a delete
                row.status = OK
            s.add(Change(image_id=image_id, kind=kind, at=utcnow()))


def test_kind_follows_the_thresholds():
    assert kind_for(10, 0) == FLAT  # 0 disables approximation, at any size
    assert kind_for(10**9, 0, ondisk_above=1) == FLAT
    assert kind_for(THRESHOLD, THRESHOLD) == FLAT
    assert kind_for(THRESHOLD + 1, THRESHOLD) == IVF
    assert kind_for(THRESHOLD + 1, THRESHOLD, ondisk_above=THRESHOLD) == ONDISK
    assert kind_for(10**8, THRESHOLD, ondisk_above=0) == IVF  # 0: never on disk


@pytest.mark.parametrize("kind", [IVF, ONDISK])
def test_recall_against_exact(tmp_path, catalog, world, vectors, kind):
    vi = open_index(catalog, tmp_path, kind)
    assert vi.kind == kind and len(vi) == N
    assert vi.layered.nprobe < vi.layered.nlist  # approximate: part of the lists per query
    assert recall(vi, catalog, world.text_queries(60, seed=4)) >= MIN_RECALL[kind]
    # A stored vector finds itself first, with its exact score (ondisk re-ranks from the catalog).
    scores, ids = vi.search(vectors[41], 10)
    assert ids[0] == 42 and scores[0] == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("kind", [IVF, ONDISK])
def test_deletes_moves_and_re_adds_catch_up(tmp_path, catalog, world, vectors, kind):
    vi = open_index(catalog, tmp_path, kind)
    rng = np.random.default_rng(5)
    edited = {int(i): rng.standard_normal(IDENTITY.dim).astype(np.float32) for i in range(100, 110)}
    for v in edited.values():
        v /= np.linalg.norm(v)
    change(catalog, {42: REMOVED, 43: REMOVED, 44: MOVED, 45: REMOVED})
    change(catalog, {45: ADDED, **dict.fromkeys(edited, CHANGED)}, edited)  # 45 comes back
    assert vi.catch_up(catalog)
    assert len(vi) == N - 2 and vi.ids().tolist() == catalog_now(catalog)[0].tolist()
    assert 42 not in vi.search(vectors[41], 10)[1].tolist() and vi.vector(42) is None
    for moved_or_back in (44, 45):  # same id, same vector, found once
        _, ids = vi.search(vectors[moved_or_back - 1], 10)
        assert ids.tolist().count(moved_or_back) == 1 and ids[0] == moved_or_back
        assert np.allclose(vi.vector(moved_or_back), vectors[moved_or_back - 1], atol=1e-6)
    for image_id, v in edited.items():  # found by its new vector, not by its old one
        assert vi.search(v, 1)[1][0] == image_id
        assert image_id not in vi.search(vectors[image_id - 1], 3)[1].tolist()
    assert recall(vi, catalog, world.text_queries(30, seed=6)) >= MIN_RECALL[kind]
    # Saved and reopened, the index is the same; reopened from scratch (deleted), too.
    vi.save(tmp_path / "vectors")
    again = open_index(catalog, tmp_path, kind)
    assert again.layered.base.stem == vi.layered.base.stem and len(again) == N - 2
    q = world.text_queries(1, seed=8)[0]
    assert again.search(q, 10)[1].tolist() == vi.search(q, 10)[1].tolist()


@pytest.mark.parametrize("kind", [IVF, ONDISK])
def test_filters_are_exact_when_small_and_only_return_allowed_ids(tmp_path, catalog, world, vectors, kind):
    vi = open_index(catalog, tmp_path, kind)
    change(catalog, {7: REMOVED, 500: MOVED})
    vi.catch_up(catalog)
    q = world.text_queries(1, seed=9)[0]
    small = np.array([7, 42, 500, 3000, 5999, 12_345], dtype=np.int64)  # 7 is deleted, 500 moved
    scores, ids = vi.search(q, 10, allowed_ids=small)
    assert ids.tolist() == exact_top(catalog, q, 10, small) and 7 not in ids.tolist()
    assert np.all(np.diff(scores) <= 0)
    medium = np.arange(1, N + 1, 5, dtype=np.int64)  # 4,000 ids: every list is probed
    assert_exact(catalog, q, vi.search(q, 10, allowed_ids=medium)[1], medium)
    large = np.arange(1, N + 1, 2, dtype=np.int64)  # half the library: approximate, allowed ids only
    found = [vi.search(p, 10, allowed_ids=large)[1] for p in world.text_queries(20, seed=10)]
    assert all(np.all(f % 2 == 1) and len(f) == 10 for f in found)
    hits = sum(
        len(set(f.tolist()) & set(exact_top(catalog, p, 10, large)))
        for f, p in zip(found, world.text_queries(20, seed=10), strict=True)
    )
    assert hits / 200 >= MIN_RECALL[kind]


@pytest.mark.parametrize("damage", ["delete-data", "flip-byte", "truncate-delta", "garbage-meta"])
def test_damaged_base_is_rebuilt_with_identical_results(tmp_path, catalog, world, damage):
    vdir = tmp_path / "vectors"
    vi = open_index(catalog, tmp_path, IVF)
    qs = world.text_queries(10, seed=11)
    reference = [vi.search(q, 10)[1].tolist() for q in qs]
    stem = vi.layered.base.stem
    vi.close()
    if damage == "delete-data":
        (vdir / f"{stem}.ivfdata").unlink()
    elif damage == "flip-byte":
        data = bytearray((vdir / f"{stem}.ivfdata").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (vdir / f"{stem}.ivfdata").write_bytes(bytes(data))
    elif damage == "truncate-delta":
        (vdir / f"{stem}.delta").write_bytes(b"")
    else:
        (vdir / f"{IDENTITY.key}.json").write_text("{not json")
    rebuilt = open_index(catalog, tmp_path, IVF)
    assert rebuilt.layered.base.stem != stem and len(rebuilt) == N
    assert [rebuilt.search(q, 10)[1].tolist() for q in qs] == reference
    rebuilt.close()  # the damaged base is nobody's now: the next save sweeps it away
    again = open_index(catalog, tmp_path, IVF)
    again.save(vdir)
    assert not list(vdir.glob(f"{stem}.*"))


def test_writer_compacts_and_a_reader_adopts_the_new_base(tmp_path, catalog, world, vectors, monkeypatch):
    monkeypatch.setattr(vectors_ivf, "COMPACT_MIN", 50)
    vdir = tmp_path / "vectors"
    writer = open_index(catalog, tmp_path, IVF)
    reader = open_index(catalog, tmp_path, IVF)
    first = writer.layered.base.stem
    change(catalog, {i: REMOVED for i in range(1, 6)})
    writer.catch_up(catalog)
    writer.save(vdir)  # few changes: only the delta is written
    assert writer.layered.base.stem == first
    change(catalog, {i: MOVED for i in range(100, 4100)})  # 4,000 moves: 20 % of the base
    writer.catch_up(catalog)
    assert writer.layered.needs_compaction()
    writer.save(vdir)  # rebuilds the base from the catalog, then saves it
    assert writer.layered.base.stem != first and writer.layered.pending == 0 and len(writer) == N - 5
    assert (vdir / f"{first}.ivfdata").exists()  # the reader still maps the old base: kept
    change(catalog, {7: REMOVED})
    assert reader.catch_up(catalog)  # adopts the writer's base, then applies the newer change
    assert reader.layered.base.stem == writer.layered.base.stem and len(reader) == N - 6
    q = world.text_queries(1, seed=12)[0]
    writer.catch_up(catalog)
    assert reader.search(q, 10)[1].tolist() == writer.search(q, 10)[1].tolist()
    reader.close()
    writer.save(vdir)  # nobody holds the first base any more: swept
    assert not (vdir / f"{first}.ivfdata").exists()
    meta = json.loads((vdir / f"{IDENTITY.key}.json").read_text())
    assert meta["base"]["stem"] == writer.layered.base.stem and meta["seq"] == catalog.last_seq()


def test_settings_change_switches_kind_and_back(tmp_path, catalog, vectors):
    vdir = tmp_path / "vectors"
    vi = open_index(catalog, tmp_path, IVF)
    vi.save(vdir)
    flat = VectorIndex.open(catalog, vdir, IDENTITY, approximate_above=10 * N)  # a settings change
    assert flat.kind == FLAT and len(flat) == N
    assert VectorIndex.open(catalog, vdir, IDENTITY, **KINDS[IVF]).kind == IVF  # the saved base again
    assert VectorIndex.open(catalog, vdir, IDENTITY, **KINDS[ONDISK]).kind == ONDISK
    # An exact index that grows past the threshold becomes approximate on catch-up.
    flat.approximate_above = THRESHOLD
    change(catalog, {1: REMOVED})
    assert flat.catch_up(catalog) and flat.kind == IVF and len(flat) == N - 1


def test_growth_past_the_threshold_switches_kind(tmp_path, vectors):
    cat = synthesize_catalog(tmp_path / "small", IDENTITY, vectors[:THRESHOLD])
    try:
        vi = VectorIndex.open(cat, tmp_path / "vectors", IDENTITY, approximate_above=THRESHOLD)
        assert vi.kind == FLAT
        raw = cat.engine.raw_connection()
        try:  # more rows arrive (as the writer would add them), each with its change record
            cur = raw.cursor()
            for i in range(THRESHOLD + 1, THRESHOLD + 1001):
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
        assert vi.kind == IVF and len(vi) == THRESHOLD + 1000
        assert vi.search(vectors[THRESHOLD + 10], 1)[1][0] == THRESHOLD + 11
    finally:
        cat.close()
