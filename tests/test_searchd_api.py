"""searchd's API over a real socket (waitress on loopback) with the toy CLIP and the shared index."""

from __future__ import annotations

import io
import os
from datetime import date, datetime

import numpy as np
import pytest
from PIL import Image

from indexer.toyworld import Spec, render
from tests.conftest import LIBRARY_SIZE, read_manifest
from tests.searchd_support import private_settings, serve_app

RESULT_KEYS = {
    "id", "score", "path", "name", "folder", "width", "height", "taken_at", "camera", "format",
    "caption", "generated", "thumb", "file",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(indexed, toy_encoder, tmp_path_factory):
    settings, catalog = indexed
    served = serve_app(private_settings(settings, tmp_path_factory.mktemp("searchd")), catalog, toy_encoder)
    yield served
    served.close()


@pytest.fixture(scope="module")
def truth(library):
    return read_manifest(library)


def kind_of(truth, result) -> tuple[str, str]:
    rec = truth[result["path"]]
    return rec["colour"], rec["shape"]


# -- text, image, like, combined ---------------------------------------------------------------------
@pytest.mark.parametrize(("colour", "shape"), [("red", "circle"), ("blue", "square"), ("yellow", "star")])
def test_text_query_finds_the_right_images(server, truth, colour, shape):
    relevant = sum(1 for r in truth.values() if (r["colour"], r["shape"]) == (colour, shape))
    answer = server.search(q=f"a {colour} {shape}", limit=10)
    results = answer["results"]
    right = sum(kind_of(truth, r) == (colour, shape) for r in results)
    assert right >= min(9, relevant), [(truth[r["path"]]["caption"], r["score"]) for r in results]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
    assert answer["offset"] == 0 and answer["next_offset"] == 10 and answer["query_ms"] >= 0


def test_results_carry_every_field_of_the_contract(server, truth):
    r = server.search(q="a green triangle", limit=3)["results"][0]
    assert set(r) == RESULT_KEYS
    rec = truth[r["path"]]
    assert r["name"] == os.path.basename(r["path"]) and r["folder"] == os.path.dirname(r["path"])
    assert (r["width"], r["height"], r["format"]) == (rec["width"], rec["height"], rec["format"])
    assert r["camera"] == rec["camera"]
    assert r["taken_at"] == rec["taken_at"]
    assert r["thumb"] == f"/api/images/{r['id']}/thumb" and r["file"] == f"/api/images/{r['id']}/file"
    assert r["generated"] is False


def png_bytes(spec: Spec, seed: int) -> bytes:
    buf = io.BytesIO()
    render(spec, (256, 256), np.random.default_rng(seed)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "spec", [Spec("red", "circle", "grey background"), Spec("blue", "star", "white background")]
)
def test_an_uploaded_image_finds_its_kind_first(server, truth, spec):
    reply = server.post_image("/api/search", png_bytes(spec, 99), "example.png", {"limit": "5"})
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert kind_of(truth, results[0]) == (spec.colour, spec.shape)
    assert sum(kind_of(truth, r) == (spec.colour, spec.shape) for r in results) >= 4


def test_more_like_this_ranks_the_image_itself_first(server, truth):
    seed = server.search(q="a purple circle", limit=1)["results"][0]
    results = server.search(like=seed["id"], limit=6)["results"]
    assert results[0]["id"] == seed["id"] and results[0]["score"] > 0.99
    # Image-to-image neighbours of the toy CLIP share colour and shape 75 % of the time on average
    # (measured over the library); one seed can fall below that, so check the same colour here
    # and leave the averaged figure to tests/test_search_quality.py.
    colour = truth[seed["path"]]["colour"]
    assert sum(truth[r["path"]]["colour"] == colour for r in results[1:]) >= 4
    # "#ID" in the query language is the same thing
    assert [r["id"] for r in server.search(q=f"#{seed['id']}", limit=6)["results"]] == [
        r["id"] for r in results
    ]


def test_minus_steers_away_from_a_concept(server, truth):
    plain = server.search(q="a red circle", limit=5)["results"]
    reply = server.post_json("/api/search", {"q": "a red circle", "minus": ["grey background"], "limit": 5})
    steered = reply.json()["results"]
    grey = [truth[r["path"]]["background"] == "grey background" for r in steered]
    assert not any(grey), [truth[r["path"]]["caption"] for r in steered]
    assert [r["id"] for r in steered] != [r["id"] for r in plain] or not any(
        truth[r["path"]]["background"] == "grey background" for r in plain
    )


def test_text_and_upload_combine(server, truth):
    spec = Spec("yellow", "square", "grey background")
    reply = server.post_image(
        "/api/search", png_bytes(spec, 5), "sq.png", {"q": "a yellow star", "limit": "10"}
    )
    results = reply.json()["results"]
    assert kind_of(truth, results[0])[0] == "yellow"
    assert {kind_of(truth, r) for r in results} & {("yellow", "square"), ("yellow", "star")}


# -- filters --------------------------------------------------------------------------------------------
def browse_all(server, **filters) -> list[dict]:
    out, offset = [], 0
    while offset is not None:
        answer = server.search(limit=200, offset=offset, **filters)
        out += answer["results"]
        offset = answer["next_offset"]
    return out


def test_browse_lists_the_newest_first_without_scores(server, truth):
    results = browse_all(server)
    assert len(results) == LIBRARY_SIZE == len({r["id"] for r in results})
    assert all(r["score"] is None for r in results)
    dated = [r["taken_at"] for r in results if r["taken_at"]]
    assert dated == sorted(dated, reverse=True)


def test_folder_filter_includes_subfolders_and_nothing_else(server, library, truth):
    folder = str(library.resolve() / "2019")
    expected = {p for p in truth if p.startswith(folder + os.sep)}
    assert expected
    assert {r["path"] for r in browse_all(server, folder=folder)} == expected
    answer = server.search(q="a red circle", folder=folder + "/", limit=200)
    assert {r["path"] for r in answer["results"]} <= expected


def test_date_range_filter_uses_the_taken_at_date(server, truth):
    lo, hi = date(2021, 1, 1), date(2022, 12, 31)
    expected = {
        p
        for p, r in truth.items()
        if r["taken_at"] and lo <= datetime.fromisoformat(r["taken_at"]).date() <= hi
    }
    got = browse_all(server, date_from=lo.isoformat(), date_to=hi.isoformat())
    # PNGs have no EXIF date; their file date (today) is outside the range
    assert {r["path"] for r in got} == expected


def test_file_date_stands_in_for_a_missing_taken_at(server, truth):
    today = date.fromtimestamp(max(os.stat(p).st_mtime for p in truth)).isoformat()
    got = browse_all(server, date_from=today, type="png")
    assert {r["path"] for r in got} == {p for p, r in truth.items() if r["format"] == "PNG"}


def test_camera_type_and_generated_filters(server, truth):
    got = browse_all(server, camera="Lumo X100")
    assert {r["path"] for r in got} == {p for p, r in truth.items() if r["camera"] == "Lumo X100"}
    pngs = browse_all(server, type="png")
    assert {r["path"] for r in pngs} == {p for p, r in truth.items() if r["format"] == "PNG"}
    assert len(browse_all(server, type="jpg")) == LIBRARY_SIZE - len(pngs)  # jpg is an alias
    assert browse_all(server, generated="1") == []  # the toy library holds no generated images
    assert len(browse_all(server, generated="0")) == LIBRARY_SIZE


def test_a_filtered_search_is_exact(server, truth):
    """The filtered top 10 equals the unfiltered ranking restricted to the filter (the dumb oracle)."""
    everything = server.search(q="a red circle", limit=200, offset=0)["results"]
    everything += server.search(q="a red circle", limit=200, offset=200)["results"]
    oracle = [r["id"] for r in everything if r["format"] == "PNG"][:10]
    filtered = server.search(q="a red circle", type="png", limit=10)["results"]
    assert [r["id"] for r in filtered] == oracle


def test_min_score_drops_weak_matches(server):
    everything = server.search(q="a black star", limit=200)["results"]
    cut = everything[len(everything) // 10]["score"]
    strong = server.search(q="a black star", limit=200, min_score=cut)["results"]
    assert strong and all(r["score"] >= cut for r in strong)
    assert len(strong) < len(everything)
    assert strong[-1]["id"] == everything[len(strong) - 1]["id"]


def test_tag_filter_needs_an_accepted_tag(server):
    assert server.search(tag="nonexistent")["results"] == []


# -- pagination -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", [{}, {"q": "a white square"}, {"q": "a blue star", "type": "jpeg"}])
def test_pages_join_without_duplicates(server, query):
    whole = server.search(limit=100, **query)["results"]
    pages, offset = [], 0
    while offset is not None and offset < 100:
        answer = server.search(limit=25, offset=offset, **query)
        assert answer["offset"] == offset
        pages += answer["results"]
        offset = answer["next_offset"]
    ids = [r["id"] for r in pages]
    assert len(ids) == len(set(ids)) == 100
    assert ids == [r["id"] for r in whole]


def test_the_last_page_has_no_next_offset(server):
    last = server.search(q="a circle", limit=200, offset=200)
    assert len(last["results"]) == LIBRARY_SIZE - 200 and last["next_offset"] is None


# -- images, thumbnails, originals ------------------------------------------------------------------------
def test_image_metadata(server, truth):
    r = server.search(q="an orange triangle", limit=1)["results"][0]
    meta = server.get(f"/api/images/{r['id']}").json()
    assert set(meta) >= RESULT_KEYS and meta["score"] is None
    assert meta["status"] == "ok" and meta["size"] == os.path.getsize(r["path"])
    assert meta["path"] == r["path"] and {t["state"] for t in meta["tags"]} <= {"suggested"}
    assert r["path"].startswith(meta["root"] + os.sep)


def test_thumbnails_are_made_once_cached_and_revalidated(server):
    r = server.search(q="a green square", limit=1)["results"][0]
    first = server.get(r["thumb"])
    assert first.status == 200 and first.headers["content-type"] == "image/jpeg"
    meta = server.get(f"/api/images/{r['id']}").json()
    assert first.headers["etag"] == f'"{meta["content_hash"]}"'
    assert "max-age=86400" in first.headers["cache-control"]
    thumb = Image.open(io.BytesIO(first.body))
    size = server.state.settings.thumb_size
    assert max(thumb.size) == min(size, max(r["width"], r["height"]))
    cached = list(server.state.settings.layout.thumbs.rglob(f"{meta['content_hash']}-*.jpg"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = server.get(r["thumb"])
    assert again.body == first.body and cached[0].stat().st_mtime_ns == mtime  # served, not remade
    not_modified = server.get(r["thumb"], headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status == 304 and not_modified.body == b""
    metrics = server.get("/metrics").body.decode()
    assert 'photoseek_thumbnails_total{result="made"}' in metrics
    assert 'photoseek_thumbnails_total{result="not_modified"}' in metrics


def test_the_original_file_is_served_as_is(server):
    r = server.search(q="a white circle", limit=1)["results"][0]
    reply = server.get(r["file"])
    assert reply.status == 200
    with open(r["path"], "rb") as f:
        assert reply.body == f.read()


def test_unknown_image_is_a_json_404(server):
    for path in ("/api/images/999999", "/api/images/999999/thumb", "/api/images/999999/file"):
        reply = server.get(path)
        assert reply.status == 404 and "999999" in reply.error


# -- facets, health, metrics, openapi ---------------------------------------------------------------------
def test_facets(server, truth, library):
    facets = server.get("/api/facets").json()
    assert facets["count"] == LIBRARY_SIZE
    assert set(facets["folders"]) == {os.path.dirname(p) for p in truth}
    assert set(facets["cameras"]) == {r["camera"] for r in truth.values() if r["camera"]}
    assert set(facets["types"]) == {"jpeg", "png"}
    taken = sorted(r["taken_at"][:10] for r in truth.values() if r["taken_at"])
    assert facets["date_min"] == taken[0] and facets["date_max"] >= taken[-1]
    assert facets["tags"] == []


def test_healthz(server, indexed):
    _, catalog = indexed
    health = server.get("/healthz").json()
    assert health == {
        "status": "ok",
        "images": LIBRARY_SIZE,
        "seq": catalog.last_seq(),
        "model": catalog.active_model().label,
    }


def test_metrics_count_queries_latency_and_errors(server):
    server.search(q="a black circle")
    assert server.get("/api/search", {"limit": "-1"}).status == 400
    text = server.get("/metrics").body.decode()
    assert 'photoseek_queries_total{kind="text"}' in text
    assert 'photoseek_query_seconds_bucket{kind="text",le="0.1"}' in text
    assert 'photoseek_http_errors_total{status="400"}' in text
    assert "photoseek_index_vectors 320.0" in text


def test_openapi_describes_the_api(server):
    spec = server.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/search" in spec["paths"] and "get" in spec["paths"]["/api/search"]


def test_the_page_is_served_at_the_root(server):
    from searchd.app import WEB_DIR

    if not (WEB_DIR / "index.html").is_file():
        pytest.skip("web/index.html is not in the tree yet")
    page = server.get("/")
    assert page.status == 200 and b"<html" in page.body.lower()
    assert "script-src 'self'" in page.headers["content-security-policy"]
