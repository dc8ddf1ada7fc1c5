"""searchd follows the indexer: photos added, moved and deleted show up without a restart.

The indexer (a Writer with its own catalog connection, as `photoseek watch` would be) commits while
the server runs; answers must reflect each commit within LIVE_DEADLINE_S.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from indexer.decode import PROMPT_KEY
from indexer.toyworld import Spec, build_library, render
from tests.conftest import index_library, library_for, make_settings
from tests.searchd_support import Served

LIVE_DEADLINE_S = 2.0  # the promise: visible within 2 s of the indexer's commit


@pytest.fixture
def live(tmp_path, toy_encoder):
    """(server, writer, root): a small indexed library, served, with a writer for the test to use."""
    from searchd.app import create_app

    root = tmp_path / "photos"
    build_library(root, 40, seed=5)
    data_dir = tmp_path / "data"
    indexer, _ = index_library(data_dir, [root], toy_encoder)
    # The server's library has its own catalog connections, like a separate process, and takes the
    # library's own model as `photoseek serve` with no --model does.
    server = library_for(indexer.settings.replace(model=""), toy_encoder)
    served = Served(create_app(server))
    yield served, indexer.writer(), root.resolve()
    served.close()
    server.close()
    indexer.close()


def write_png(path: Path, spec: Spec, seed: int, prompt: str | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = None
    if prompt is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(PROMPT_KEY, prompt)
    render(spec, (256, 256), np.random.default_rng(seed)).save(path, format="PNG", pnginfo=info)
    return str(path.resolve())


def eventually(probe, deadline_s: float = LIVE_DEADLINE_S):
    """Poll `probe` until it returns something truthy; fail unless a request sent within the deadline
    saw it (counting from the request, not the reply, keeps a loaded machine from failing the test)."""
    started = time.monotonic()
    while True:
        asked = time.monotonic() - started
        assert asked < deadline_s, f"not visible within {deadline_s}s"
        value = probe()
        if value:
            return value
        time.sleep(0.05)


def ids_in(server, **params) -> set[int]:
    return {r["id"] for r in server.search(limit=200, **params)["results"]}


def test_new_photos_appear_and_deleted_ones_disappear(live):
    server, writer, root = live
    server.search(q="a purple star")  # warm: the server has looked at the catalog already
    new = [
        write_png(root / "New album" / f"star{i}.png", Spec("purple", "star", "grey background"), i)
        for i in range(3)
    ]
    writer.index_files(new, root)

    def top_has_new():
        results = server.search(q="a purple star", limit=5)["results"]
        return {r["path"] for r in results} >= set(new) and results

    results = eventually(top_has_new)
    new_ids = {r["id"] for r in results if r["path"] in new}
    assert len(new_ids) == 3
    assert {r["path"] for r in server.search(folder=str(root / "New album"))["results"]} == set(new)

    gone = new[0]
    writer.remove_paths([gone])
    eventually(lambda: gone not in {r["path"] for r in server.search(q="a purple star", limit=50)["results"]})
    assert gone not in {r["path"] for r in server.search(limit=200)["results"]}  # browse mode too
    gone_id = next(r["id"] for r in results if r["path"] == gone)
    assert server.get(f"/api/images/{gone_id}").status == 404
    assert server.get(f"/api/images/{gone_id}/thumb").status == 404


def test_a_moved_photo_keeps_its_id(live):
    server, writer, root = live
    src = write_png(root / "a" / "moved.png", Spec("orange", "circle", "blue background"), 1)
    writer.index_files([src], root)
    image_id = eventually(lambda: [r["id"] for r in server.search(folder=str(root / "a"))["results"]])[0]
    dst = str(root / "b" / "renamed.png")
    os.makedirs(root / "b")
    os.rename(src, dst)
    writer.move_path(src, dst, root)
    moved = eventually(lambda: server.search(folder=str(root / "b"))["results"])
    assert [(r["id"], r["path"]) for r in moved] == [(image_id, dst)]
    assert server.get(f"/api/images/{image_id}").json()["path"] == dst
    assert server.get(f"/api/images/{image_id}/file").status == 200


def test_generated_images_are_found_by_the_generated_filter(live):
    server, writer, root = live
    path = write_png(
        root / "generated" / "g1.png", Spec("green", "star", "white background"), 3, "a green star"
    )
    writer.index_files([path], root)
    results = eventually(lambda: server.search(generated="1")["results"])
    assert [(r["path"], r["generated"], r["caption"]) for r in results] == [(path, True, "a green star")]
    assert path not in {r["path"] for r in server.search(generated="0", limit=200)["results"]}


def test_thumbnails_are_oriented_by_exif(live):
    server, writer, root = live
    # Stored 200 wide x 100 high; EXIF Orientation 6 says "rotate 90° clockwise to display".
    img = Image.new("RGB", (200, 100), (200, 30, 30))
    img.paste((20, 20, 200), (0, 0, 100, 100))  # left half blue: after rotation it is the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    path = root / "rotated.jpg"
    img.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    writer.index_files([str(path.resolve())], root)
    image_id = eventually(
        lambda: [r["id"] for r in server.search(limit=200)["results"] if r["name"] == "rotated.jpg"]
    )[0]
    meta = server.get(f"/api/images/{image_id}").json()
    assert (meta["width"], meta["height"]) == (100, 200)
    thumb = Image.open(io.BytesIO(server.get(f"/api/images/{image_id}/thumb").body)).convert("RGB")
    assert thumb.size == (100, 200)
    top, bottom = thumb.getpixel((50, 40)), thumb.getpixel((50, 160))
    assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2], (top, bottom)


def test_a_server_started_on_an_empty_library_starts_answering_once_photos_arrive(tmp_path, toy_encoder):
    from searchd.app import create_app

    settings = make_settings(tmp_path / "data")
    server = library_for(settings, toy_encoder)
    served = Served(create_app(server))
    try:
        assert served.get("/healthz").json()["images"] == 0
        reply = served.get("/api/search", {"q": "a red circle"})
        assert reply.status == 409 and "no photos yet" in reply.error
        assert served.get("/api/search").json()["results"] == []  # browsing an empty library is fine
        root = tmp_path / "photos"
        path = write_png(root / "one.png", Spec("red", "circle", "grey background"), 0)
        with library_for(settings, toy_encoder) as indexer:
            indexer.writer().index_files([path], root)

        def answered():  # a 409 ("no photos yet") until the server has caught up
            reply = served.get("/api/search", {"q": "a red circle"})
            return reply.status == 200 and reply.json()["results"]

        assert [r["path"] for r in eventually(answered)] == [path]
    finally:
        served.close()
        server.close()


def test_a_model_switch_asks_for_a_restart(live):
    """After `photoseek reembed` the loaded text tower no longer matches the vectors: say so (409)."""
    from indexer.encoder import load_encoder
    from indexer.reembed import reembed

    server, writer, _ = live
    other = load_encoder("photoseek-toy:random", "cpu")  # same architecture, other weights
    reembed(library_for(writer.settings.replace(model="photoseek-toy:random"), other, writer.catalog))
    reply = eventually(lambda: (r := server.get("/api/search", {"q": "a red circle"})).status == 409 and r)
    assert "restart `photoseek serve`" in reply.error


def test_the_tag_filter_takes_accepted_tags_only(live):
    server, _, _ = live
    ids = [r["id"] for r in server.search(limit=3)["results"]]
    for image_id, action in zip(ids, ("add", "add", "reject"), strict=True):
        reply = server.post_json(f"/api/images/{image_id}/tags", {"name": "favourite", "action": action})
        assert reply.status == 200, reply.body
    assert {r["id"] for r in server.search(tag="favourite")["results"]} == set(ids[:2])
    assert {r["id"] for r in server.search(q="a red circle", tag="favourite")["results"]} == set(ids[:2])
    assert server.search(tag="favourite", type="nonexistent")["results"] == []
    assert {"name": "favourite", "count": 2} in server.get("/api/facets").json()["tags"]
    tags = server.get(f"/api/images/{ids[0]}").json()["tags"]
    assert [(t["name"], t["state"]) for t in tags if t["state"] != "suggested"] == [("favourite", "accepted")]
