"""A generation job submitted to searchd ends up searchable by its prompt, with no watcher running."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import index_library
from tests.searchd_support import serve_app

PROMPT = "a red circle on a blue background"


def test_generated_image_is_indexed_and_found_by_its_prompt(tmp_path, library, toy_encoder):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted(library.rglob("*.jpg"))[:12]:
        (photos / src.name).write_bytes(src.read_bytes())
    settings, catalog, _ = index_library(tmp_path / "data", [photos], toy_encoder)
    served = serve_app(settings, catalog, toy_encoder)
    try:
        reply = served.post_json(
            "/api/generate", {"prompt": PROMPT, "size": [64, 64], "steps": 24, "cutouts": 8}
        )
        assert reply.status == 202, reply.body
        job_id = reply.json()["id"]
        deadline = time.monotonic() + 300
        while (job := served.get(f"/api/generate/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "done", job
        result = Path(job["result_path"])
        assert result.parent == settings.generated_dir
        deadline = time.monotonic() + 10
        while True:  # indexed by searchd itself (no watcher holds the writer lock)
            hits = served.search(generated="1")["results"]
            if hits or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [h["path"] for h in hits] == [str(result)]
        assert hits[0]["caption"] == PROMPT and hits[0]["generated"] is True

        def rank(query: str) -> int:
            paths = [h["path"] for h in served.search(q=query, limit=13)["results"]]
            return paths.index(str(result)) if str(result) in paths else len(paths)

        # The listing above reads the catalog; the vector index follows it within CATCH_UP_INTERVAL_S.
        deadline = time.monotonic() + 5
        while rank(PROMPT) == 13 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rank(PROMPT) < rank("a yellow star on a white background") < 13
    finally:
        served.close()
    # `photoseek index` with no extra roots picks generated/ up as well (the library's own folder)
    assert settings.generated_dir in settings.replace(roots=(str(photos),)).library_roots()
