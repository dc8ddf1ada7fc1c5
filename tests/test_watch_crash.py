"""The real daemon (`photoseek watch` in a subprocess) killed with SIGKILL mid-indexing, again and again.

Afterwards every photo is indexed exactly once (one row per path, one embedding per content), the
catalog matches the disk, and the saved vector index matches the catalog: docs/design.md invariant 3.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.catalog import open_catalog
from indexer.catalog.schema import Embedding, Image
from tests.conftest import make_settings
from tests.watch_support import (
    assert_vectors_agree,
    catalog_matches_disk,
    library_files,
    ok_rows,
    photos_on_disk,
    wait_for,
)

PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")
ENV = {
    "PHOTOSEEK_SETTLE_S": "0.3",
    "PHOTOSEEK_WORKERS": "0",
    "PHOTOSEEK_BATCH_SIZE": "8",
    "PHOTOSEEK_VECTOR_SAVE_INTERVAL_S": "0.5",
    "PHOTOSEEK_TORCH_THREADS": "2",
    "OMP_NUM_THREADS": "2",
}


def start_watcher(data: Path, root: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [PHOTOSEEK, "--data-dir", str(data), "--model", "toy", "watch", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def count_ok(data: Path) -> int:
    if not (data / "catalog.sqlite").exists():
        return 0
    catalog = open_catalog(data)
    try:
        return len(ok_rows(catalog))
    finally:
        catalog.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path, library):
    rng = random.Random(5)
    root, data, log = (tmp_path / "photos").resolve(), tmp_path / "data", tmp_path / "watch.log"
    sources = library_files(library)
    batches = [sources[i : i + 60] for i in range(0, 240, 60)]
    (root / "first").mkdir(parents=True)
    for src in batches[0]:
        shutil.copy(src, root / "first" / src.name)

    for round_no, batch in enumerate(batches[1:], start=1):
        proc = start_watcher(data, root, log)
        before = count_ok(data)
        # New photos arrive while it runs (events), on top of what the first scan still has to do.
        folder = root / f"round{round_no}"
        folder.mkdir()
        for src in batch:
            shutil.copy(src, folder / src.name)
        started = lambda b=before, p=proc: count_ok(data) > b or p.poll() is not None  # noqa: E731
        wait_for(started, 120, "indexing to start")
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the middle of a batch, or between two
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # A folder renamed while no watcher runs: the restart must move rows, not duplicate them.
    (root / "first").rename(root / "first renamed")
    proc = start_watcher(data, root, log)
    try:
        catalog = open_catalog(data)
        wait_for(lambda: catalog_matches_disk(catalog, [root]), 180, "the catalog to match the disk")
        # A second writer is refused with a clear message while this one runs.
        second = subprocess.run(
            [PHOTOSEEK, "--data-dir", str(data), "--model", "toy", "watch", str(root)],
            capture_output=True,
            text=True,
            env={**os.environ, **ENV},
            timeout=120,
        )
        assert second.returncode == 2 and "another photoseek indexer" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]

    on_disk = [Path(p) for p in photos_on_disk(root)]
    with catalog.session() as s:
        rows = s.scalar(select(func.count()).select_from(Image))
        paths = s.scalar(select(func.count(func.distinct(Image.path))))
        embeddings = s.scalar(select(func.count()).select_from(Embedding))
    assert rows == paths == len(on_disk)  # exactly one row per file: no duplicates, no leftovers
    assert embeddings == len({p.read_bytes() for p in on_disk})
    assert catalog_matches_disk(catalog, [root])
    settings = make_settings(data)
    assert_vectors_agree(settings, catalog, saved_is_current=True)
