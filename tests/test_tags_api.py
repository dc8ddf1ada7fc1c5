"""The tag routes over a real socket (waitress on loopback), on searchd's app, with the toy CLIP."""

from __future__ import annotations

import io

import numpy as np
import pytest

from indexer.toyworld import COLOURS, SHAPES, Spec, render
from tests.conftest import library_for, read_manifest
from tests.searchd_support import Served
from tests.test_tags import ids_by_path, index_with_tags

PAIRS = ",".join(f"{c} {s}" for c in COLOURS for s in SHAPES)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, toy_encoder):
    from indexer.toyworld import build_library

    root = tmp_path_factory.mktemp("tag-photos")
    build_library(root, 40, seed=77)
    settings, catalog = index_with_tags(tmp_path_factory.mktemp("tag-data"), root, toy_encoder)
    return settings, catalog, root


@pytest.fixture(scope="module")
def server(tagged, toy_encoder):
    from searchd.app import create_app

    settings, catalog, _ = tagged
    served = Served(create_app(library_for(settings, toy_encoder, catalog)))
    yield served
    served.close()


@pytest.fixture(scope="module")
def truth(tagged):
    settings, catalog, root = tagged
    manifest = read_manifest(root)
    return {image_id: manifest[path] for path, image_id in ids_by_path(catalog).items()}


def png(spec: Spec) -> bytes:
    buf = io.BytesIO()
    render(spec, (200, 160), np.random.default_rng(3)).save(buf, format="PNG")
    return buf.getvalue()


def test_counts_and_an_images_suggestions(server, truth):
    reply = server.get("/api/tags")
    assert reply.status == 200
    doc = reply.json()
    assert doc["threshold"] > 0 and doc["tags"]
    assert {"name", "source", "accepted", "suggested"} <= set(doc["tags"][0])
    image_id, rec = next(iter(truth.items()))
    tags = server.get(f"/api/images/{image_id}/tags").json()["tags"]
    assert rec["colour"] in {t["name"] for t in tags if t["state"] == "suggested"}
    assert all(0 < t["score"] <= 1 for t in tags)


def test_accept_reject_add_remove_and_filter(server, truth):
    image_id, rec = sorted(truth.items())[1]
    url = f"/api/images/{image_id}/tags"
    doc = server.post_json(url, {"name": rec["colour"], "action": "accept"}).json()
    assert {"name": rec["colour"], "state": "accepted"}.items() <= doc["tags"][0].items()

    doc = server.post_json(url, {"name": rec["shape"], "action": "reject"}).json()
    assert {t["name"]: t["state"] for t in doc["tags"]}[rec["shape"]] == "rejected"
    doc = server.post_json(url, {"name": "Our Trip", "action": "add"}).json()
    assert {t["name"]: t["source"] for t in doc["tags"]}["our trip"] == "user"

    counts = {t["name"]: t for t in server.get("/api/tags").json()["tags"]}
    assert counts["our trip"]["accepted"] == 1
    found = server.search(tag="our trip")["results"]  # searchd's filter reads accepted tags
    assert [r["id"] for r in found] == [image_id]

    doc = server.post_json(url, {"name": "our trip", "action": "remove"}).json()
    assert "our trip" not in {t["name"] for t in doc["tags"]}
    assert server.search(tag="our trip")["results"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/images/1/tags", {"name": "dog", "action": "delete"}, 400, "must be one of accept"),
        ("/api/images/1/tags", {"name": "  ", "action": "add"}, 400, "non-empty string"),
        ("/api/images/1/tags", [1, 2], 400, "JSON object"),
        ("/api/images/1/tags", b"{not json", 400, "not valid JSON"),
        ("/api/images/999999/tags", {"name": "dog", "action": "add"}, 404, "no image #999999"),
        ("/api/classify", {"id": 1}, 400, "labels"),
        ("/api/classify", {"id": 1, "labels": "cat"}, 400, "at least two labels"),
        ("/api/classify", {"labels": "cat,dog"}, 400, '"id" of an indexed photo'),
        ("/api/classify", {"id": 999999, "labels": "cat,dog"}, 404, "#999999 is not in the library"),
        ("/api/classify", {"id": "x", "labels": "cat,dog"}, 400, "must be an image id"),
    ],
)
def test_bad_requests_get_json_errors(server, path, body, status, words):
    reply = server.post_json(path, body)
    assert reply.status == status and words in reply.error
    assert server.get("/api/images/999999/tags").status == 404


def test_decision_needs_json(server):
    reply = server.request("POST", "/api/images/1/tags", b"name=dog", {"Content-Type": "text/plain"})
    assert reply.status == 415 and "send JSON" in reply.error


def test_classify_an_upload_and_an_indexed_photo(server, truth):
    reply = server.post_image(
        "/api/classify", png(Spec("blue", "star", "grey background")), "q.png", {"labels": PAIRS}
    )
    assert reply.status == 200
    labels = reply.json()["labels"]
    assert labels[0]["label"] == "blue star" and len(labels) == 32
    assert sum(r["probability"] for r in labels) == pytest.approx(1.0, abs=1e-3)

    image_id, rec = sorted(truth.items())[2]
    labels = server.post_json("/api/classify", {"id": image_id, "labels": list(SHAPES)}).json()["labels"]
    assert labels[0]["label"] == rec["shape"]

    reply = server.post_image("/api/classify", b"not an image at all", "broken.jpg", {"labels": "cat,dog"})
    assert reply.status == 400 and "broken.jpg" in reply.error
