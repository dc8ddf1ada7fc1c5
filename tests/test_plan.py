"""The streamed plan (indexer/writer/plan.py: a path-ordered walk merged with the catalog's rows, read a
page at a time) against a dumb oracle (every row in a dict, every file in a set), on names chosen to
trip the ordering: a folder sorts as "name/", so "b.jpg" < "b/x.jpg" < "b0.jpg"."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from indexer.catalog import images
from indexer.catalog.images import Known
from indexer.catalog.schema import DELETED
from indexer.scan import walk_photos
from indexer.writer.plan import plan_root
from tests.conftest import index_library
from tests.watch_support import library_files

NAMES = [
    "b.jpg", "b/x.jpg", "b/y/z.jpg", "b0.jpg", "b-c.jpg", "b!.jpg", "B.jpg", "a b/1.jpg", "a b.jpg",
    "Été/1.jpg", "Ete/1.jpg", "z/a.jpg", "z.jpg", "x/y/z/deep.jpg", "日本/写真.jpg", "b/x0.jpg",
]  # fmt: skip


def oracle(catalog, root_id: int, root: str) -> tuple[set[str], int, set[int]]:
    """(paths to read, unchanged count, ids missing) the slow, obvious way."""
    with sqlite3.connect(catalog.path) as db:  # all rows at once, not through the code under test
        rows = db.execute("SELECT path, id, size, mtime, status FROM images WHERE root_id = ?", (root_id,))
        known = {path: Known(i, path, size, mtime, status, None) for path, i, size, mtime, status in rows}
    on_disk = {}
    for folder, _, files in os.walk(root):
        for name in files:
            p = os.path.join(folder, name)
            st = os.stat(p)
            on_disk[p] = (st.st_size, st.st_mtime)
    to_read, unchanged = set(), 0
    for p, (size, mtime) in on_disk.items():
        k = known.get(p)
        if k is not None and k.status != DELETED and (k.size, k.mtime) == (size, mtime):
            unchanged += 1
        else:
            to_read.add(p)
    missing = {k.id for p, k in known.items() if p not in on_disk and k.status != DELETED}
    return to_read, unchanged, missing


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_streamed_plan_equals_the_oracle(tmp_path, library, toy_encoder, page, monkeypatch):
    root = (tmp_path / "photos").resolve()
    sources = library_files(library)
    for name, src in zip(NAMES, sources, strict=False):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / name)
    walked = [e.path for e in walk_photos(str(root))]
    assert walked == sorted(walked) and len(walked) == len(NAMES)  # the catalog's order
    indexed, summary = index_library(tmp_path / "data", [root], toy_encoder)
    assert summary.new == len(NAMES)
    # Changes on every side of the ordering: removed, added, edited, a folder renamed.
    (root / "b" / "x.jpg").unlink()
    (root / "b0.jpg").unlink()
    shutil.copy(sources[20], root / "b" / "new.jpg")
    shutil.copy(sources[21], root / "b.jpg")  # edited in place
    (root / "z").rename(root / "zz")
    shutil.copy(sources[22], root / "aaa first.jpg")
    monkeypatch.setattr(images, "KNOWN_PAGE", page)
    catalog = indexed.catalog
    root_row = catalog.ensure_root(root)
    want_read, want_unchanged, want_missing = oracle(catalog, root_row.id, str(root))
    with plan_root(catalog, root_row.id, str(root), indexed.layout.root, set()) as plan:
        got_read = [e.path for e in plan.entries()]
        assert got_read == sorted(got_read) and set(got_read) == want_read
        assert plan.to_read == len(got_read)
        assert plan.unchanged == want_unchanged
        assert {k.id for k in plan.missing} == want_missing
    summary = indexed.writer().index_roots([root])
    assert (summary.new, summary.changed, summary.moved, summary.removed) == (2, 1, 1, 2)
