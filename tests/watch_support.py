"""Helpers for the watcher tests: a Watcher on a thread, deadlines instead of sleeps, and the oracle
(what is on disk) that the catalog and the vector index must agree with."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from indexer.catalog.schema import OK, Image, Root
from indexer.decode import hash_bytes
from indexer.scan import SKIP_DIRS, is_photo_name

WATCH_OVERRIDES = dict(settle_s=0.3, poll_interval_s=0.2, vector_save_interval_s=0.5)


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    """Poll cond until it is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


class RunningWatcher:
    """A real Watcher (real observers, real catalog, the toy CLIP) running on its own thread."""

    def __init__(self, settings, roots: list[Path], encoder=None, event_queue_max: int | None = None) -> None:
        """`encoder`: an already loaded encoder for the library's model cache (None: the library loads
        settings.model itself, and lets it go after model_idle_unload_s)."""
        from indexer.watch.daemon import Watcher
        from tests.conftest import library_for

        self.settings = settings
        self.library = library_for(settings, encoder)
        self.catalog = self.library.catalog
        self.watcher = Watcher(self.library, roots)
        if event_queue_max is not None:
            from indexer.watch.events import EventQueue

            self.watcher.events = EventQueue(event_queue_max)
            self.watcher.observers.events = self.watcher.events
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> RunningWatcher:
        self.thread.start()
        wait_for(lambda: self.watcher.status.status.state == "watching" or self.error, 60, "the first scan")
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.watcher.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the watcher did not stop"
        self.library.models.clear()  # the catalog stays open: tests read it after the watcher stopped
        if self.error is not None:
            raise self.error


def ok_rows(catalog) -> dict[str, tuple[int, str]]:
    """path -> (id, content hash) of every searchable image."""
    with catalog.session() as s:
        rows = s.execute(select(Image.path, Image.id, Image.content_hash).where(Image.status == OK)).all()
    return {p: (i, h) for p, i, h in rows}


def root_online(catalog, root: Path) -> bool:
    with catalog.session() as s:
        return bool(s.scalar(select(Root.online).where(Root.path == str(root.resolve()))))


def photos_on_disk(root: Path) -> dict[str, str]:
    """path -> content hash of every file a scan would index (the oracle)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if is_photo_name(name):
                p = os.path.join(folder, name)
                with contextlib.suppress(OSError):  # deleted meanwhile
                    out[p] = hash_bytes(Path(p).read_bytes())
    return out


def catalog_matches_disk(catalog, roots: list[Path]) -> bool:
    disk: dict[str, str] = {}
    for r in roots:
        disk.update(photos_on_disk(r.resolve()))
    rows = ok_rows(catalog)
    return {p: h for p, (_, h) in rows.items()} == disk


def assert_vectors_agree(settings, catalog, saved_is_current: bool = False) -> None:
    """The vector index holds exactly the searchable images: caught up from the saved file, and (after a
    clean stop) the saved file itself, with no orphan vectors and none missing."""
    from indexer.vectors import VectorIndex

    identity = catalog.active_model()
    model_id = catalog.model_id(identity)
    want = sorted(i for i, _ in ok_rows(catalog).values())
    ids, _ = catalog.searchable_vectors(model_id)
    assert sorted(ids.tolist()) == want  # every searchable image has its embedding
    vi = VectorIndex.open(catalog, settings.layout.vectors, identity)
    assert sorted(faiss_ids(vi)) == want
    if saved_is_current:
        saved = VectorIndex.load(settings.layout.vectors, identity, model_id)
        assert saved is not None and saved.seq == catalog.last_seq()
        assert sorted(faiss_ids(saved)) == want


def faiss_ids(vi) -> list[int]:
    import faiss

    return [int(i) for i in faiss.vector_to_array(vi.index.id_map)]


def copy_slowly(src: Path, dst: Path, chunks: int, pause: float) -> None:
    """Write dst in `chunks` pieces, `pause` seconds apart (a copy over a slow network)."""
    data = src.read_bytes()
    step = -(-len(data) // chunks)
    with open(dst, "wb") as f:
        for start in range(0, len(data), step):
            f.write(data[start : start + step])
            f.flush()
            time.sleep(pause)


def library_files(library: Path) -> list[Path]:
    return sorted(p for p in library.rglob("*") if p.is_file() and is_photo_name(p.name))


def copy_tree_photos(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("manifest.jsonl"))
