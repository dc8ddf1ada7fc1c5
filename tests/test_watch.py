"""The watcher on real folders: real inotify / polling observers, a real catalog, the toy CLIP.

Every test waits on the catalog with a deadline (no fixed sleeps) and ends by checking the catalog
against the disk (the oracle) and the vector index against the catalog.
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from indexer.catalog.schema import ADDED, CHANGED, DELETED, OK, Change, Embedding, Image, Root
from indexer.decode import hash_bytes
from tests.conftest import make_settings
from tests.watch_support import (
    WATCH_OVERRIDES,
    RunningWatcher,
    assert_vectors_agree,
    catalog_matches_disk,
    copy_slowly,
    library_files,
    ok_rows,
    root_online,
    wait_for,
)

# watchdog warns (from its observer thread) when inotify hands a reused watch descriptor to a new
# folder; harmless, but pytest's "warnings are errors" would kill that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


@pytest.fixture
def photos(tmp_path, library):
    """A watched root with six photos in two albums."""
    root = tmp_path / "photos"
    files = library_files(library)
    for i, src in enumerate(files[:6]):
        album = root / ("album a" if i < 3 else "album b")
        album.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, album / f"p{i}.jpg")
    return root.resolve()


@pytest.fixture
def spare(library):
    """Photos not yet in the root, to copy in."""
    return library_files(library)[6:]


def settings_for(tmp_path, **kw):
    return make_settings(tmp_path / "data", **{**WATCH_OVERRIDES, **kw})


def id_of(catalog, path) -> int | None:
    return ok_rows(catalog).get(str(path), (None, None))[0]


def test_follows_creates_edits_moves_and_deletes(tmp_path, photos, spare, toy_encoder):
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        cat = rw.catalog
        assert set(ok_rows(cat)) == {str(p) for p in photos.rglob("*.jpg")}  # the first scan

        # created
        new = photos / "album a" / "new.jpg"
        shutil.copy(spare[0], new)
        wait_for(lambda: id_of(cat, new), what="a new photo to be indexed")

        # modified: same id, new content
        edited = photos / "album a" / "p0.jpg"
        old_id = id_of(cat, edited)
        edited.write_bytes(spare[1].read_bytes())
        want = hash_bytes(spare[1].read_bytes())
        wait_for(lambda: ok_rows(cat).get(str(edited), (0, ""))[1] == want, what="an edit to be indexed")
        assert id_of(cat, edited) == old_id

        # renamed in place, and moved to another folder: same ids
        renamed = photos / "album a" / "renamed.jpg"
        rename_id = id_of(cat, photos / "album a" / "p1.jpg")
        (photos / "album a" / "p1.jpg").rename(renamed)
        moved = photos / "album b" / "moved.jpg"
        move_id = id_of(cat, photos / "album a" / "p2.jpg")
        (photos / "album a" / "p2.jpg").rename(moved)
        wait_for(lambda: id_of(cat, renamed) == rename_id and id_of(cat, moved) == move_id, what="moves")

        # a folder renamed: every photo in it keeps its id
        before = {p.name: id_of(cat, p) for p in (photos / "album b").iterdir()}
        (photos / "album b").rename(photos / "album c")
        wait_for(
            lambda: {n: id_of(cat, photos / "album c" / n) for n in before} == before,
            what="a folder rename",
        )

        # deleted: a file, then a whole folder
        (photos / "album a" / "new.jpg").unlink()
        shutil.rmtree(photos / "album c")
        wait_for(lambda: catalog_matches_disk(cat, [photos]), what="deletes")
        with cat.session() as s:
            q = select(Image.status).where(Image.path == str(photos / "album c" / "moved.jpg"))
            assert s.scalar(q) == DELETED
    assert catalog_matches_disk(rw.catalog, [photos])
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)


def test_a_slow_copy_is_indexed_once_and_complete(tmp_path, photos, spare, toy_encoder):
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        dst = photos / "album a" / "arriving.jpg"
        # 12 chunks, 0.12 s apart: 1.4 s of writing, far longer than settle_s (0.3 s)
        copy_slowly(spare[0], dst, chunks=12, pause=0.12)
        want = hash_bytes(spare[0].read_bytes())
        wait_for(lambda: ok_rows(rw.catalog).get(str(dst), (0, ""))[1] == want, what="the copied photo")
        image_id = id_of(rw.catalog, dst)
        with rw.catalog.session() as s:
            kinds = list(s.scalars(select(Change.kind).where(Change.image_id == image_id)))
            failed = s.scalar(select(func.count()).select_from(Image).where(Image.status != OK))
    assert kinds == [ADDED]  # never indexed half-written, never re-indexed
    assert failed == 0


def test_moves_in_and_out_of_the_root_and_duplicates(tmp_path, photos, spare, toy_encoder):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        cat = rw.catalog
        # a folder moved in from outside the root: a create of everything in it
        incoming = outside / "trip"
        incoming.mkdir()
        for i, src in enumerate(spare[:3]):
            shutil.copy(src, incoming / f"t{i}.jpg")
        incoming.rename(photos / "trip")
        # a photo moved out: a delete
        gone = photos / "album b" / "p3.jpg"
        gone_id = id_of(cat, gone)
        gone.rename(outside / "p3.jpg")
        # the same content under two names: both listed, one embedding
        shutil.copy(spare[4], photos / "dup1.jpg")
        shutil.copy(spare[4], photos / "dup2.jpg")
        wait_for(lambda: catalog_matches_disk(cat, [photos]), what="moves in and out")
        rows = ok_rows(cat)
        assert rows[str(photos / "dup1.jpg")][1] == rows[str(photos / "dup2.jpg")][1]
        with cat.session() as s:
            h = rows[str(photos / "dup1.jpg")][1]
            q = select(func.count()).select_from(Embedding).where(Embedding.content_hash == h)
            assert s.scalar(q) == 1

        # back in again: the old row (id, tags, embedding) comes back
        (outside / "p3.jpg").rename(photos / "back.jpg")
        wait_for(lambda: id_of(cat, photos / "back.jpg") == gone_id, what="a photo coming back")
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)


def test_a_root_that_disappears_is_offline_not_deleted(tmp_path, photos, toy_encoder):
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        cat = rw.catalog
        before = ok_rows(cat)
        assert before and root_online(cat, photos)

        # unmounted: the folder is gone
        away = tmp_path / "unmounted"
        photos.rename(away)
        wait_for(lambda: not root_online(cat, photos), what="the root to be marked offline")
        assert ok_rows(cat) == before
        away.rename(photos)
        wait_for(lambda: root_online(cat, photos), what="the root to come back")
        assert ok_rows(cat) == before

        # an empty mount point: everything in it vanished at once
        parked = tmp_path / "parked"
        parked.mkdir()
        for child in list(photos.iterdir()):
            child.rename(parked / child.name)
        wait_for(lambda: not root_online(cat, photos), what="the emptied root to be marked offline")
        assert ok_rows(cat) == before
        for child in list(parked.iterdir()):
            child.rename(photos / child.name)
        wait_for(lambda: root_online(cat, photos), what="the root to come back")
        assert ok_rows(cat) == before

        # and it is watched again after coming back
        (photos / "album a" / "p0.jpg").unlink()
        wait_for(lambda: catalog_matches_disk(cat, [photos]), what="a delete after the root came back")
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)


def test_polling_observer_follows_changes(tmp_path, photos, spare, toy_encoder):
    settings = settings_for(tmp_path, force_polling=True)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        cat = rw.catalog
        with cat.session() as s:
            assert s.scalar(select(Root.observer)) == "polling"
        shutil.copy(spare[0], photos / "album a" / "polled.jpg")
        moved_id = id_of(cat, photos / "album b" / "p4.jpg")
        (photos / "album b" / "p4.jpg").rename(photos / "album a" / "p4-moved.jpg")
        (photos / "album b" / "p5.jpg").unlink()
        wait_for(lambda: catalog_matches_disk(cat, [photos]), what="polled changes")
        assert id_of(cat, photos / "album a" / "p4-moved.jpg") == moved_id
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)


def test_event_overflow_falls_back_to_reconciling(tmp_path, photos, spare, toy_encoder):
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder, event_queue_max=4) as rw:
        burst = photos / "burst"
        burst.mkdir()
        for i, src in enumerate(spare[:40]):
            shutil.copy(src, burst / f"b{i}.jpg")
        wait_for(lambda: catalog_matches_disk(rw.catalog, [photos]), what="the burst")
        reconciles = rw.watcher.reconciles
    assert reconciles.get("too many events at once", 0) >= 1


def test_files_changed_while_stopped_are_caught_at_start(tmp_path, photos, spare, toy_encoder):
    settings = settings_for(tmp_path)
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        moved_id = id_of(rw.catalog, photos / "album a" / "p0.jpg")
    (photos / "album a" / "p0.jpg").rename(photos / "album b" / "p0-moved.jpg")
    (photos / "album a" / "p1.jpg").unlink()
    shutil.copy(spare[0], photos / "added.jpg")
    with RunningWatcher(settings, [photos], toy_encoder) as rw:
        assert catalog_matches_disk(rw.catalog, [photos])
        assert id_of(rw.catalog, photos / "album b" / "p0-moved.jpg") == moved_id
    with rw.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Change).where(Change.kind == CHANGED)) == 0
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)
