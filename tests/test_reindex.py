"""Re-indexing: unchanged files cost nothing, renames and moves keep ids and embeddings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import func, select

from indexer.catalog.schema import DELETED, OK, Embedding, Image
from indexer.writer import Writer
from tests.conftest import LIBRARY_SIZE, library_for, make_settings


def _writer(data_dir: Path, catalog, encoder) -> Writer:
    return library_for(make_settings(data_dir), encoder, catalog).writer()


def _rows(catalog) -> dict[str, Image]:
    with catalog.session() as s:
        return {im.path: im for im in s.scalars(select(Image))}


def test_unchanged_tree_embeds_nothing(tmp_path, fresh_library, toy_encoder):
    from indexer.catalog import open_catalog

    catalog = open_catalog(tmp_path / "data")
    first = _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    assert first.new == LIBRARY_SIZE and first.embedded > 0
    seq = catalog.last_seq()
    again = _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    assert (again.new, again.changed, again.embedded, again.unchanged) == (0, 0, 0, LIBRARY_SIZE)
    assert catalog.last_seq() == seq  # nothing that affects search happened


def test_touched_file_with_same_content_is_not_reembedded(tmp_path, fresh_library, toy_encoder):
    from indexer.catalog import open_catalog

    catalog = open_catalog(tmp_path / "data")
    _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    victim = next(fresh_library.rglob("*.jpg"))
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    summary = _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    assert summary.embedded == 0 and summary.changed == 0


def test_rename_and_folder_move_keep_ids_and_embeddings(tmp_path, fresh_library, toy_encoder):
    from indexer.catalog import open_catalog

    catalog = open_catalog(tmp_path / "data")
    _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    before = _rows(catalog)
    with catalog.session() as s:
        n_embeddings = s.scalar(select(func.count()).select_from(Embedding))

    src = sorted(fresh_library.rglob("*.jpg"))[0]
    renamed = src.with_name("renamed photo ✓.jpg")
    src.rename(renamed)
    folder = next(p for p in fresh_library.iterdir() if p.is_dir() and p.name == "Garden")
    moved_folder = fresh_library / "Archive" / "Garden (old)"
    moved_folder.parent.mkdir()
    shutil.move(str(folder), str(moved_folder))

    summary = _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    garden = [p for p in before if f"{os.sep}Garden{os.sep}" in p]
    assert summary.embedded == 0 and summary.new == 0
    assert summary.moved == 1 + len(garden) and summary.removed == 0
    after = _rows(catalog)
    assert after[str(renamed)].id == before[str(src)].id
    assert after[str(renamed)].content_hash == before[str(src)].content_hash
    for old in garden:
        new = str(moved_folder / Path(old).relative_to(folder))
        assert after[new].id == before[old].id and after[new].status == OK
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding)) == n_embeddings
        assert s.scalar(select(func.count()).select_from(Image)) == LIBRARY_SIZE


def test_deleted_file_leaves_search_and_comes_back_with_its_id(tmp_path, fresh_library, toy_encoder):
    from indexer.catalog import open_catalog

    catalog = open_catalog(tmp_path / "data")
    writer = _writer(tmp_path / "data", catalog, toy_encoder)
    writer.index_roots([fresh_library])
    victim = sorted(fresh_library.rglob("*.png"))[0]
    data = victim.read_bytes()
    old_id = _rows(catalog)[str(victim)].id
    victim.unlink()
    summary = writer.index_roots([fresh_library])
    assert summary.removed == 1
    assert _rows(catalog)[str(victim)].status == DELETED
    assert old_id not in set(writer.vectors().search(toy_encoder.encode_texts(["a photo"])[0], 1000)[1])

    restored = fresh_library / "restored.png"
    restored.write_bytes(data)
    summary = writer.index_roots([fresh_library])
    assert summary.embedded == 0
    assert _rows(catalog)[str(restored)].id == old_id


def test_duplicates_are_both_listed_and_share_one_embedding(tmp_path, fresh_library, toy_encoder):
    from indexer.catalog import open_catalog

    src = sorted(fresh_library.rglob("*.jpg"))[3]
    twin = fresh_library / "twin.jpg"
    shutil.copy(src, twin)
    catalog = open_catalog(tmp_path / "data")
    summary = _writer(tmp_path / "data", catalog, toy_encoder).index_roots([fresh_library])
    rows = _rows(catalog)
    assert summary.new == LIBRARY_SIZE + 1 and summary.embedded == LIBRARY_SIZE
    assert rows[str(twin)].content_hash == rows[str(src)].content_hash
    assert rows[str(twin)].id != rows[str(src)].id


def test_duplicates_in_batches_committing_in_the_background(tmp_path, fresh_library, toy_encoder):
    """Commits run in a thread while the next batch is embedded: a content seen in a batch whose
    commit is still in flight is not embedded a second time (that would break the catalog's unique
    (model, content) key), and every copy is listed."""
    from indexer.catalog import open_catalog

    originals = sorted(fresh_library.rglob("*.jpg"))[:6]
    for n, src in enumerate(originals):
        for k in range(3):  # copies spread over later batches
            shutil.copy(src, fresh_library / f"zz copy {k} of {n}.jpg")
    catalog = open_catalog(tmp_path / "data")
    settings = make_settings(tmp_path / "data", batch_size=3)
    summary = library_for(settings, toy_encoder, catalog).writer().index_roots([fresh_library])
    assert summary.new == LIBRARY_SIZE + 18 and summary.embedded == LIBRARY_SIZE
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding)) == LIBRARY_SIZE
        hashes = set(s.scalars(select(Embedding.content_hash)))
    rows = _rows(catalog)
    assert all(im.status == OK and im.content_hash in hashes for im in rows.values())
    assert len(rows) == LIBRARY_SIZE + 18
