"""Every entry point opens the library the same way (indexer/library.py), so the same hooks run for
`photoseek index`, `photoseek watch` and the images searchd generates: each of them gets tag
suggestions. With tag_threshold 0 every vocabulary concept clears the bar, so an image whose batch ran
the hook has exactly MAX_PER_IMAGE suggestions, and one whose batch did not has none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from indexer.catalog import open_catalog
from indexer.tags.store import tags_of
from indexer.tags.suggest import MAX_PER_IMAGE
from tests.conftest import make_settings
from tests.searchd_support import serve_app
from tests.watch_support import WATCH_OVERRIDES, RunningWatcher, library_files, ok_rows, wait_for


def suggestion_counts(catalog) -> dict[str, int]:
    return {
        path: sum(t.state == "suggested" for t in tags_of(catalog, image_id))
        for path, (image_id, _) in ok_rows(catalog).items()
    }


def test_index_command_suggests_tags(tmp_path, library):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in library_files(library)[:6]:
        shutil.copy(src, photos / src.name)
    data = tmp_path / "data"
    env = {**os.environ, "PHOTOSEEK_TAG_THRESHOLD": "0", "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "searchd.cli", "--data-dir", str(data), "--model", "toy", "-q"]
    proc = subprocess.run(
        [*cmd, "index", str(photos), "--no-progress"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    catalog = open_catalog(data)
    try:
        assert set(suggestion_counts(catalog).values()) == {MAX_PER_IMAGE}
    finally:
        catalog.close()


def test_watch_suggests_tags(tmp_path, library, toy_encoder):
    root = (tmp_path / "photos").resolve()
    root.mkdir()
    files = library_files(library)
    shutil.copy(files[0], root / "a.jpg")
    settings = make_settings(tmp_path / "data", tag_threshold=0.0, **WATCH_OVERRIDES)
    with RunningWatcher(settings, [root], toy_encoder) as rw:
        shutil.copy(files[1], root / "b.jpg")  # through an inotify event, not the first scan
        wait_for(lambda: len(ok_rows(rw.catalog)) == 2, 30, "b.jpg to be indexed")
        assert suggestion_counts(rw.catalog) == {
            str(root / "a.jpg"): MAX_PER_IMAGE,
            str(root / "b.jpg"): MAX_PER_IMAGE,
        }


def test_an_image_generated_through_the_api_gets_tag_suggestions(tmp_path, toy_encoder):
    settings = make_settings(tmp_path / "data", tag_threshold=0.0)
    served = serve_app(settings, None, toy_encoder)
    try:
        body = {"prompt": "a red circle", "size": [32, 32], "steps": 4, "cutouts": 2, "augments": "none"}
        reply = served.post_json("/api/generate", body)
        assert reply.status == 202, reply.body
        job_id = reply.json()["id"]
        deadline = time.monotonic() + 300
        while (job := served.get(f"/api/generate/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "done", job

        def generated():  # indexed by searchd itself once the job is done (no watcher holds the lock)
            return served.search(generated="1")["results"]

        (hit,) = wait_for(generated, 30, "the generated image in the catalog")
        assert Path(hit["path"]) == Path(job["result_path"])
        tags = served.get(f"/api/images/{hit['id']}/tags").json()["tags"]
        assert sum(t["state"] == "suggested" for t in tags) == MAX_PER_IMAGE
    finally:
        served.close()
