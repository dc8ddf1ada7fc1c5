"""Churn: hundreds of random creates, edits, renames, folder moves and deletes while the watcher runs.

Once the disk is left alone, the catalog must match it exactly (every photo on disk searchable with
its current content hash, nothing else) and the vector index must match the catalog.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.watch_support import (
    WATCH_OVERRIDES,
    RunningWatcher,
    assert_vectors_agree,
    catalog_matches_disk,
    library_files,
    ok_rows,
    wait_for,
)

# watchdog warns (from its observer thread) when inotify hands a reused watch descriptor to a new
# folder; harmless, but pytest's "warnings are errors" would kill that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def churn(root: Path, sources: list[Path], ops: int, seed: int) -> dict[str, int]:
    """Random operations on root; returns how many of each were done."""
    rng = random.Random(seed)
    folders = [root / name for name in ("a", "b", "c d", "é")]
    for f in folders:
        f.mkdir(exist_ok=True)
    done: dict[str, int] = {}

    def files() -> list[Path]:
        return [p for p in root.rglob("*.jpg") if p.is_file()]

    for n in range(ops):
        existing = files()
        op = rng.choice(["create"] * 4 + ["modify", "rename", "move", "delete", "folder"])
        if op != "create" and not existing:
            op = "create"
        if op == "create":
            dst = rng.choice([f for f in folders if f.exists()] or [root]) / f"n{n}.jpg"
            shutil.copy(rng.choice(sources), dst)
        elif op == "modify":
            rng.choice(existing).write_bytes(rng.choice(sources).read_bytes())
        elif op == "rename":
            p = rng.choice(existing)
            p.rename(p.with_name(f"r{n}.jpg"))
        elif op == "move":
            p = rng.choice(existing)
            target = rng.choice([f for f in folders if f.exists()] or [root])
            p.rename(target / f"m{n}.jpg")
        elif op == "delete":
            rng.choice(existing).unlink()
        elif op == "folder":  # rename a whole folder, or delete one and make it again
            f = rng.choice([f for f in folders if f.exists()] or folders)
            if f.exists() and rng.random() < 0.7:
                tmp = f.with_name(f.name + f"-{n}")
                f.rename(tmp)
                folders[folders.index(f)] = tmp
            elif f.exists():
                shutil.rmtree(f)
                f.mkdir()
        done[op] = done.get(op, 0) + 1
    return done


@pytest.mark.parametrize(
    "observer",
    ["native", pytest.param("polling", marks=pytest.mark.slow)],
)
def test_catalog_matches_disk_after_churn(tmp_path, library, toy_encoder, observer):
    root = (tmp_path / "photos").resolve()
    root.mkdir()
    sources = library_files(library)[:60]
    for src in sources[:20]:
        shutil.copy(src, root / src.name)
    settings = make_settings(tmp_path / "data", **WATCH_OVERRIDES, force_polling=observer == "polling")
    with RunningWatcher(settings, [root], toy_encoder) as rw:
        done = churn(root, sources, ops=300, seed=7 if observer == "native" else 8)
        assert done["create"] > 50 and done["rename"] > 5 and done["folder"] > 5
        wait_for(lambda: catalog_matches_disk(rw.catalog, [root]), 60, "the catalog to match the disk")
        ids = [i for i, _ in ok_rows(rw.catalog).values()]
        assert len(ids) == len(set(ids))
    assert catalog_matches_disk(rw.catalog, [root])
    assert_vectors_agree(settings, rw.catalog, saved_is_current=True)
