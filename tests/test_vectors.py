"""The FAISS file is a cache: deleted, corrupt or stale, it is rebuilt from the catalog alone."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.vectors import VectorIndex
from tests.conftest import library_for, make_settings

QUERIES = ["a red circle", "a blue square on a grey background", "a yellow star", "a black triangle"]


@pytest.fixture
def built(tmp_path, fresh_library, toy_encoder):
    data = tmp_path / "data"
    library = library_for(make_settings(data), toy_encoder)
    writer = library.writer()
    writer.index_roots([fresh_library])
    return library.settings, library.catalog, writer


def _answers(vi: VectorIndex, encoder) -> list[tuple[list[int], list[float]]]:
    out = []
    for q in encoder.encode_texts(QUERIES):
        scores, ids = vi.search(q, 20)
        out.append((ids.tolist(), np.round(scores, 5).tolist()))
    return out


def _reopen(settings, catalog, encoder) -> VectorIndex:
    return VectorIndex.open(catalog, settings.layout.vectors, encoder.identity)


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "flip-byte", "delete-meta"])
def test_damaged_index_is_rebuilt_with_identical_results(built, toy_encoder, damage, caplog):
    settings, catalog, writer = built
    reference = _answers(_reopen(settings, catalog, toy_encoder), toy_encoder)
    index_path, meta_path = VectorIndex.paths(settings.layout.vectors, toy_encoder.identity)
    data = index_path.read_bytes()
    if damage == "delete":
        index_path.unlink()
    elif damage == "garbage":
        index_path.write_bytes(b"not a faiss index" * 100)
    elif damage == "truncate":
        index_path.write_bytes(data[: len(data) // 2])
    elif damage == "flip-byte":
        index_path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        meta_path.unlink()
    rebuilt = _reopen(settings, catalog, toy_encoder)
    assert len(rebuilt) == len(writer.vectors())
    assert _answers(rebuilt, toy_encoder) == reference


def test_index_behind_the_catalog_catches_up(built, toy_encoder, fresh_library):
    settings, catalog, writer = built
    stale = _reopen(settings, catalog, toy_encoder)
    victim = sorted(fresh_library.rglob("*.jpg"))[0]
    victim.unlink()
    writer.index_roots([fresh_library])  # the catalog moves on; `stale` was loaded before
    assert stale.catch_up(catalog)
    fresh = _reopen(settings, catalog, toy_encoder)
    assert len(stale) == len(fresh) == len(writer.vectors())
    assert _answers(stale, toy_encoder) == _answers(fresh, toy_encoder)


def test_saved_index_of_another_model_is_not_used(built, toy_encoder):
    settings, catalog, _ = built
    from indexer.catalog.store import ModelIdentity

    foreign = ModelIdentity("other", "weights", "", toy_encoder.identity.dim)
    assert VectorIndex.load(settings.layout.vectors, foreign, 1) is None


def test_filtered_search_only_returns_allowed_ids(built, toy_encoder):
    settings, catalog, _ = built
    vi = _reopen(settings, catalog, toy_encoder)
    q = toy_encoder.encode_texts(["a red circle"])[0]
    _, all_ids = vi.search(q, 50)
    allowed = all_ids[10:15]
    scores, ids = vi.search(q, 10, allowed_ids=allowed)
    assert set(ids.tolist()) == set(allowed.tolist())
    assert list(scores) == sorted(scores, reverse=True)


def test_flat_index_keeps_fp16_copies_and_ranks_as_fp32(built, toy_encoder):
    """The exact index scans fp16 copies of the vectors (half the bytes): its answers are those of
    fp32 inner products over the catalog's vectors, scores within 1e-4; an index saved as fp32 by
    an older photoseek is rebuilt once."""
    import faiss
    from sqlalchemy import select

    from indexer.catalog.schema import Embedding, Image

    settings, catalog, writer = built
    vi = writer.vectors()
    assert isinstance(faiss.downcast_index(vi.index.index), faiss.IndexScalarQuantizer)
    with catalog.session() as s:
        rows = s.execute(
            select(Image.id, Embedding.vector).join(Embedding, Embedding.content_hash == Image.content_hash)
        ).all()
    ids = np.array([r[0] for r in rows])
    vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    for q in toy_encoder.encode_texts(QUERIES):
        scores, got = vi.search(q, 10)
        exact = vecs @ q
        want = ids[np.argsort(-exact, kind="stable")[:10]]
        assert set(got.tolist()) == set(want.tolist())
        assert np.abs(scores - np.sort(exact)[::-1][:10]).max() < 1e-4

    old = faiss.IndexIDMap2(faiss.IndexFlatIP(vi.identity.dim))  # the fp32 format of earlier versions
    old.add_with_ids(vecs, ids)
    vi.index = old
    vi.save(settings.layout.vectors)
    again = _reopen(settings, catalog, toy_encoder)
    assert isinstance(faiss.downcast_index(again.index.index), faiss.IndexScalarQuantizer)
    assert len(again) == len(vi)
