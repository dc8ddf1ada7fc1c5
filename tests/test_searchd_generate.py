"""A generation job submitted to searchd ends up searchable by its prompt, with no watcher running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import index_library
from tests.searchd_support import serve_app
from tests.watch_support import wait_for

PROMPT = "a red circle on a blue background"
OTHER = "a yellow star on a white background"


def test_generated_image_is_indexed_and_found_by_its_prompt(tmp_path, library, toy_encoder):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted(library.rglob("*.jpg"))[:12]:
        (photos / src.name).write_bytes(src.read_bytes())
    indexed_lib, _ = index_library(tmp_path / "data", [photos], toy_encoder)
    settings = indexed_lib.settings
    catalog = indexed_lib.catalog
    served = serve_app(settings, catalog, toy_encoder)
    try:
        # The toy CLIP needs many more steps under the references' augmentations (see the browser test).
        # A fixed seed: the same image every run, so the ranking below is not left to chance.
        body = {"prompt": PROMPT, "size": [64, 64], "steps": 24, "cutouts": 8, "augments": "none", "seed": 7}
        reply = served.post_json("/api/generate", body)
        assert reply.status == 202, reply.body
        job_id = reply.json()["id"]
        deadline = time.monotonic() + 300
        while (job := served.get(f"/api/generate/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "done", job
        result = Path(job["result_path"])
        assert result.parent == settings.layout.generated
        # Indexed by searchd itself (no watcher holds the writer lock). Waits are on conditions, with
        # deadlines a busy machine meets (this once failed a clean-clone run under load at 5 s).
        hits = wait_for(lambda: served.search(generated="1")["results"], 120, "the generated image listed")
        assert [h["path"] for h in hits] == [str(result)]
        assert hits[0]["caption"] == PROMPT and hits[0]["generated"] is True

        def rank(query: str) -> int:
            paths = [h["path"] for h in served.search(q=query, limit=13)["results"]]
            return paths.index(str(result)) if str(result) in paths else len(paths)

        # The listing above reads the catalog; the vector index follows it within CATCH_UP_INTERVAL_S
        # (13 photos, limit 13: every indexed one is ranked, so 13 means "not in the index yet").
        wait_for(lambda: rank(PROMPT) < 13, 120, "the vector index to catch up with the generated image")
        assert rank(PROMPT) < rank("a yellow star on a white background") < 13
    finally:
        served.close()
    # `photoseek index` with no extra roots picks generated/ up as well (the library's own folder)
    assert settings.layout.generated in settings.replace(roots=(str(photos),)).library_roots()


# -- the API as a client meets it: real checkpoints, bounds, the queue, pictures ------------------------
def wait_job(served, job_id: int, until=("done", "failed", "cancelled"), timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while (job := served.get(f"/api/generate/{job_id}").json())["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


SMALL = {"size": [32, 32], "steps": 3, "cutouts": 2}


def test_serve_uses_a_taming_checkpoint_from_the_vqgan_setting(tmp_path, toy_encoder):
    from generation.output import read_generation_info
    from generation.vqgan import VQGANConfigError
    from tests.conftest import make_settings
    from tests.test_generation import write_taming_checkpoint

    cfg_path, ckpt_path, _ = write_taming_checkpoint(tmp_path)
    settings = make_settings(tmp_path / "data", vqgan=f"{cfg_path},{ckpt_path}")
    served = serve_app(settings, None, toy_encoder)
    try:
        about = served.get("/api/generate/about").json()
        assert about["vqgan"]["label"] == "model.yaml,last.ckpt" and about["vqgan"]["toy"] is False
        assert str(tmp_path) not in json.dumps(about)  # file names only, never private paths
        reply = served.post_json("/api/generate", {"prompt": PROMPT, **SMALL, "seed": 11})
        assert reply.status == 202 and reply.json()["seed"] == 11
        job = wait_job(served, reply.json()["id"])
        assert job["status"] == "done", job
        prompt, params = read_generation_info(Path(job["result_path"]))
        assert prompt == PROMPT and params["vqgan"] == "model.yaml,last.ckpt" and params["seed"] == 11
    finally:
        served.close()
    # The default is the toy VQGAN, and the API says what it is for.
    served = serve_app(make_settings(tmp_path / "data2"), None, toy_encoder)
    try:
        about = served.get("/api/generate/about").json()["vqgan"]
        assert about["toy"] is True and "only for demos and tests" in about["note"]
    finally:
        served.close()
    # A setting naming a missing file stops the server at start-up, naming the file.
    with pytest.raises(VQGANConfigError, match="nope.ckpt does not exist"):
        serve_app(
            make_settings(tmp_path / "data3", vqgan=f"{cfg_path},{tmp_path}/nope.ckpt"), None, toy_encoder
        )


def test_bounds_queue_cap_and_pages(tmp_path, toy_encoder):
    from tests.conftest import make_settings

    served = serve_app(make_settings(tmp_path / "data"), None, toy_encoder)
    try:
        bad = [
            ({"size": "2048x2048"}, "width"), ({"size": [1024, 1025]}, "height"),
            ({"steps": 10**12}, "steps"), ({"cutouts": 1000}, "cutouts"), ({"lr": 0}, "lr"),
            ({"lr": "nan"}, "lr"), ({"steps": True}, "steps"),
            ({"steps": 2.5}, "steps"), ({"seed": -1}, "seed"), ({"init_weight": -1}, "init_weight"),
            ({"augments": "Xx"}, "augmentation"), ({"colour": "red"}, "unknown"),
            ({"prompt": "text:nan"}, "finite"), ({"prompt": "text:1:-inf|" * 20}, "parts"),
            ({"prompt": "x" * 5000}, "characters"), ({"init_image": "/etc/passwd"}, "files"),
            ({"init_upload": "0" * 32 + ".png"}, "set by the server"),
            ({"init_image_id": 2**62}, "not an image id"), ({"prompt": ""}, "prompt"),
        ]  # fmt: skip
        for fields, says in bad:
            body = {"prompt": PROMPT, **fields}
            reply = served.post_json("/api/generate", body)
            assert reply.status == 400 and says in reply.error, (body, reply.status, reply.body[:300])
        for fields in ({"prompt": "#999999:1"}, {"init_image_id": 999999}):  # ids the library lacks: 404
            reply = served.post_json("/api/generate", {"prompt": PROMPT, **fields})
            assert reply.status == 404 and "no image #999999" in reply.error, reply.body
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        reply = served.request("POST", "/api/generate", b"prompt=x", form)
        assert reply.status == 415 and "multipart" in reply.error
        # Numbers JSON cannot hold (1e400 parses as infinity) and nesting deeper than Python recurses.
        for raw in (b'{"prompt": "a", "lr": 1e400}', b'{"prompt": "a", "steps": 1e400}', b"[" * 100_000):
            reply = served.post_json("/api/generate", raw)
            assert reply.status == 400, (raw[:40], reply.status)
            assert "NaN" not in reply.body.decode() and "Infinity" not in reply.body.decode()

        runner = served.app.extensions["photoseek.jobs"]
        runner.max_queued = 2
        long = {"prompt": PROMPT, "size": [32, 32], "steps": 5000, "cutouts": 2}
        ids = [served.post_json("/api/generate", long).json()["id"]]
        wait_job(served, ids[0], until=("running",))
        ids += [served.post_json("/api/generate", long).json()["id"] for _ in range(2)]
        full = served.post_json("/api/generate", long)
        assert full.status == 429 and "2 generation jobs are waiting" in full.error
        for job_id in reversed(ids):
            assert served.post_json(f"/api/generate/{job_id}/cancel", {}).status == 200
        assert wait_job(served, ids[0])["status"] == "cancelled"  # a running job stops after its step
        assert served.post_json("/api/generate", {"prompt": PROMPT, **SMALL}).status == 202  # room again
        ids.append(max(ids) + 1)

        first = served.get("/api/generate", {"limit": 3}).json()
        assert [j["id"] for j in first["jobs"]] == sorted(ids, reverse=True)[:3]
        assert first["next_before"] == first["jobs"][-1]["id"] and first["counts"]["cancelled"] == 3
        rest = served.get("/api/generate", {"limit": 3, "before": first["next_before"]}).json()
        assert [j["id"] for j in rest["jobs"]] == [min(ids)] and rest["next_before"] is None
        assert served.get("/api/generate", {"limit": "x"}).status == 400
        assert len(served.get("/api/generate", {"limit": 10**6}).json()["jobs"]) == len(ids)  # capped
        assert served.get("/api/generate", {"limit": 10**7}).status == 400
        wait_job(served, ids[-1])
    finally:
        served.close()


def test_queued_jobs_survive_a_restart(tmp_path, toy_encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "data")
    served = serve_app(settings, None, toy_encoder)
    try:
        long = served.post_json(
            "/api/generate", {"prompt": PROMPT, "size": [32, 32], "steps": 5000, "cutouts": 2}
        )
        wait_job(served, long.json()["id"], until=("running",))
        short = served.post_json("/api/generate", {"prompt": OTHER, **SMALL})
    finally:
        served.close()  # stops the worker: the running job goes back in the queue
    long_id, short_id = long.json()["id"], short.json()["id"]
    served = serve_app(settings, None, toy_encoder)
    try:
        wait_job(served, long_id, until=("running",))  # picked up again, in order
        assert served.get(f"/api/generate/{short_id}").json()["status"] == "queued"
        served.post_json(f"/api/generate/{long_id}/cancel", {})
        job = wait_job(served, short_id)
        assert job["status"] == "done" and job["prompt"] == OTHER
    finally:
        served.close()


def test_init_images_come_as_uploads_or_library_ids(tmp_path, library, toy_encoder):
    from generation.output import read_generation_info
    from tests.searchd_support import multipart

    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted(library.rglob("*.jpg"))[:4]:
        (photos / src.name).write_bytes(src.read_bytes())
    indexed, _ = index_library(tmp_path / "data", [photos], toy_encoder)
    served = serve_app(indexed.settings, indexed.catalog, toy_encoder)
    inputs = indexed.settings.data_dir / "generation-inputs"
    try:
        photo_id = served.search()["results"][0]["id"]
        start = sorted(photos.iterdir())[0].read_bytes()
        fields = {"prompt": PROMPT, "size": "32x32", "steps": "2", "cutouts": "2", "seed": "3"}
        body, ctype = multipart({"init_image": ("start.jpg", start)}, fields)
        uploaded = served.request("POST", "/api/generate", body, {"Content-Type": ctype})
        assert uploaded.status == 202, uploaded.body
        assert len(list(inputs.glob("*.png"))) == 1  # kept for the queued job (it survives a restart)
        by_id = served.post_json("/api/generate", {"prompt": f"{PROMPT}|#{photo_id}:0.5", **SMALL,
                                                   "init_image_id": photo_id})  # fmt: skip
        assert by_id.status == 202, by_id.body
        jobs = [wait_job(served, r.json()["id"]) for r in (uploaded, by_id)]
        assert [j["status"] for j in jobs] == ["done", "done"], jobs
        params = [read_generation_info(Path(j["result_path"]))[1] for j in jobs]
        assert params[0]["init_image"] == "upload" and params[1]["init_image"] == f"#{photo_id}"
        assert not list(inputs.glob("*.png"))  # the upload went with its job

        junk, ctype = multipart({"init_image": ("x.jpg", b"not an image")}, {"prompt": PROMPT})
        reply = served.request("POST", "/api/generate", junk, {"Content-Type": ctype})
        assert reply.status == 400 and "not an image" in reply.error
        # With both, the picture sent wins (here it is no picture at all: refused as such).
        fields = {"prompt": PROMPT, "init_image_id": str(photo_id)}
        both, ctype = multipart({"init_image": ("x.jpg", b"x")}, fields)
        reply = served.request("POST", "/api/generate", both, {"Content-Type": ctype})
        assert reply.status == 400 and "not an image" in reply.error
    finally:
        served.close()
