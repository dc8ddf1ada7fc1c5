"""searchd under hostile input: every refusal is a 4xx with a clear JSON message, never a 500.

Path traversal on every route that takes a path or an id, symlinks that leave a root, markup in
file names, oversized and non-image uploads, malformed JSON and query strings, and authentication.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from indexer.toyworld import Spec, render
from tests.conftest import index_library, library_for
from tests.searchd_support import close_features, multipart, private_settings, serve_app, serve_library

SECRET = b"root:x:0:0"  # what /etc/passwd would give away
TOKEN = "Tk-c0rrect-h0rse-battery-5taple"  # strong enough for searchd/tokens.py
MARKUP_NAME = "<script>alert(1)<img src=x onerror=alert(2)>.png"  # a file name cannot hold "/"


@pytest.fixture(scope="module")
def server(indexed, toy_encoder, tmp_path_factory):
    settings, catalog = indexed
    data_dir = tmp_path_factory.mktemp("searchd-sec")
    # Small limits keep the oversized upload and the decompression bomb cheap to make.
    small = private_settings(settings, data_dir).replace(max_upload_mb=0.25, max_megapixels=1.0)
    served = serve_app(small, catalog, toy_encoder)
    yield served
    served.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, toy_encoder):
    """A library with a symlink that leaves its root and a file whose name is markup."""
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "photos", base / "outside"
    root.mkdir()
    outside.mkdir()
    spec = Spec("red", "circle", "grey background")
    render(spec, (128, 128), np.random.default_rng(0)).save(root / "inside.png")
    render(spec, (128, 128), np.random.default_rng(1)).save(outside / "private.png")
    render(spec, (128, 128), np.random.default_rng(2)).save(root / MARKUP_NAME, format="PNG")
    (root / "escape.png").symlink_to(outside / "private.png")
    if Path("/etc/passwd").exists():
        (root / "passwd.png").symlink_to("/etc/passwd")
    library, _ = index_library(base / "data", [root], toy_encoder)
    served = serve_library(library)
    by_name = {r["name"]: r for r in served.search(limit=50)["results"]}
    yield served, by_name
    served.close()
    library.close()


def assert_refused(reply, status: int | tuple[int, ...] | None = None, words: str = ""):
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    if status is not None:
        assert reply.status in (status if isinstance(status, tuple) else (status,)), reply.body[:300]
    message = reply.error
    assert isinstance(message, str) and len(message) > 10
    assert words.lower() in message.lower(), message
    assert SECRET not in reply.body


# -- paths and ids ---------------------------------------------------------------------------------------
TRAVERSALS = [
    "/api/images/../../etc/passwd",
    "/api/images/..%2f..%2fetc%2fpasswd",
    "/api/images/%2e%2e/%2e%2e/etc/passwd",
    "/api/images/%252e%252e%252fetc%252fpasswd",
    "/api/images/1/../../../etc/passwd",
    "/api/images/1/thumb/../../../../etc/passwd",
    "/api/images/..%5c..%5cetc%5cpasswd",
    "/../../etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../../../etc/passwd",
    "/app.js/../../../../etc/passwd",
    "//etc/passwd",
    "/api/images/abc",
    "/api/images/abc/thumb",
    "/api/images/-1/file",
    "/api/images/1.5",
    "/api/images/0x10/file",
    "/api/images/0/thumb",
    "/api/images/99999999999999999999999999/file",
    "/api/images/%00/file",
    "/api/images/1%00/file",
    "/api/images/abc/tags",
    "/api/images/99999999999999999999999/tags",
    "/api/generate/../../etc/passwd",
    "/api/generate/abc",
    "/api/generate/99999999999999999999999/preview",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_on_path_routes_is_a_json_4xx(server, path):
    assert_refused(server.request("GET", path))


@pytest.mark.parametrize(
    "params",
    [
        {"like": "../../etc/passwd"},
        {"like": "1/../2"},
        {"like": "0"},
        {"like": "-3"},
        {"like": "99999999999999999999999"},
        {"like": "٣"},  # an Arabic-Indic digit: isdigit() says yes, int ids say no
        {"q": "#99999999999999999999999"},
    ],
)
def test_ids_in_queries_must_be_indexed_images(server, params):
    assert_refused(server.get("/api/search", params), 400, "image")


@pytest.mark.parametrize("params", [{"q": "#999999"}, {"like": "999999"}])
def test_an_id_the_library_lacks_is_a_404(server, params):
    assert_refused(server.get("/api/search", params), 404, "#999999 is not in the index")


def test_folder_filter_is_a_prefix_not_a_path_to_open(server):
    answer = server.search(folder="../../etc")
    assert answer["results"] == []
    assert server.search(folder="/etc/../etc")["results"] == []


def test_a_symlink_that_leaves_the_root_is_not_served(hostile):
    served, by_name = hostile
    link = by_name["escape.png"]  # indexed (file symlinks are followed), but its target is outside
    for route in ("file", "thumb"):
        assert_refused(served.get(link[route]), 403, "outside the library")
    inside = by_name["inside.png"]
    assert served.get(inside["file"]).status == 200 and served.get(inside["thumb"]).status == 200


@pytest.mark.skipif(not Path("/etc/passwd").exists(), reason="needs /etc/passwd")
def test_a_symlink_to_a_system_file_is_never_served(hostile):
    served, _ = hostile
    failed = [
        r for r in served.get("/api/search", {"limit": "50"}).json()["results"] if r["name"] == "passwd.png"
    ]
    assert failed == []  # not an image: recorded as failed, never a result
    for image_id in range(1, 10):
        for route in ("", "/thumb", "/file"):
            reply = served.get(f"/api/images/{image_id}{route}")
            assert SECRET not in reply.body


def test_markup_in_a_file_name_comes_back_as_a_json_string(hostile):
    served, _ = hostile
    reply = served.get("/api/search", {"q": "a red circle", "limit": "10"})
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-content-type-options"] == "nosniff"
    names = [r["name"] for r in reply.json()["results"]]
    assert MARKUP_NAME in names
    meta = next(r for r in reply.json()["results"] if r["name"].startswith("<script>"))
    file_reply = served.get(meta["file"])
    assert file_reply.status == 200 and file_reply.headers["content-type"] == "image/png"


# -- uploads ----------------------------------------------------------------------------------------------
def test_an_upload_over_the_limit_is_a_json_413(server):
    big = os.urandom(400 * 1024)  # the fixture's limit is 0.25 MB
    reply = server.post_image("/api/search", big, "huge.jpg")
    assert_refused(reply, 413, "max_upload_mb")


def test_an_upload_in_another_field_is_named(server):
    body, ctype = multipart({"photo": ("a.png", b"x")}, {})
    assert_refused(server.request("POST", "/api/search", body, {"Content-Type": ctype}), 400, "'image'")


def test_a_non_image_upload_says_so(server):
    reply = server.post_image("/api/search", b"%PDF-1.4 definitely not a photo", "report.pdf")
    assert_refused(reply, 400, "not an image")
    assert "report.pdf" in reply.error


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "x.png"),
    ],
)
def test_empty_and_truncated_uploads_are_refused(server, data, words):
    assert_refused(server.post_image("/api/search", data, "x.png"), 400, words)


def test_a_truncated_jpeg_upload_is_refused(server):
    buf = io.BytesIO()
    render(Spec("red", "circle", "grey background"), (256, 256)).save(buf, format="JPEG")
    reply = server.post_image("/api/search", buf.getvalue()[:300], "cut.jpg")
    assert_refused(reply, 400, "cut.jpg")


def test_a_decompression_bomb_upload_is_refused(server):
    buf = io.BytesIO()
    Image.new("L", (1500, 1000)).save(buf, format="PNG")  # 1.5 MP, over the fixture's 1 MP limit
    assert_refused(server.post_image("/api/search", buf.getvalue(), "bomb.png"), 400, "decompression bomb")


# -- malformed requests ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"date_from": "2024-13-45"}, "date_from"),
        ({"date_to": "yesterday"}, "date_to"),
        ({"date_from": "2024-02-30"}, "date_from"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "100000000"}, "offset"),
        ({"offset": "99999999999999999999999"}, "offset"),
        ({"min_score": "nan"}, "min_score"),
        ({"min_score": "inf"}, "min_score"),
        ({"min_score": "7"}, "min_score"),
        ({"min_score": "high"}, "min_score"),
        ({"generated": "maybe"}, "generated"),
        ({"type": "../jpeg"}, "type"),
        ({"q": "x" * 5000}, "too long"),
        ({"q": "red circle:100000"}, "weight"),
        ({"q": "red:-1"}, "positive weight"),
        ({"q": "red | red:-1"}, "cancel"),
        ({"q": "a\x00b"}, "NUL"),
        ({"image_weight": "1e400"}, "image_weight"),
    ],
)
def test_bad_query_strings_are_400_with_the_parameter_named(server, params, words):
    assert_refused(server.get("/api/search", params), 400, words)


def test_a_date_range_that_ends_before_it_starts_matches_nothing(server):
    assert server.search(q="a red circle", date_from="2024-06-01", date_to="2024-01-01")["results"] == []
    assert server.search(date_from="2024-06-01", date_to="2024-01-01")["results"] == []


def test_a_huge_limit_is_capped(server):
    answer = server.search(q="a circle", limit=10**9)
    assert len(answer["results"]) == 200 and answer["next_offset"] == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'["a red circle"]', "object"),
        (b'{"q": {"nested": 1}}', "q must be"),
        (b'{"limit": "lots"}', "limit"),
        (b'{"like": [1, "x"]}', "like"),
        (b"\xff\xfe\x00garbage", "JSON"),
    ],
)
def test_malformed_json_bodies_are_400(server, body, words):
    assert_refused(server.post_json("/api/search", body), 400, words)


def test_json_search_works(server):
    reply = server.post_json("/api/search", {"q": "a blue square", "limit": 3, "generated": False})
    assert reply.status == 200 and len(reply.json()["results"]) == 3


def test_unknown_routes_and_methods_are_json(server):
    assert_refused(server.get("/api/nope"), 404)
    reply = server.request("DELETE", "/api/search")
    assert_refused(reply, 405, "DELETE")
    assert "GET" in reply.headers["allow"]
    assert_refused(server.request("POST", "/api/images/1"), 405)


def test_hostile_inputs_never_give_a_500(server):
    """A small fuzz over parameters: whatever arrives, the answer is 2xx or a JSON 4xx."""
    rng = np.random.default_rng(7)
    keys = [
        "q",
        "like",
        "minus",
        "limit",
        "offset",
        "folder",
        "date_from",
        "date_to",
        "camera",
        "type",
        "tag",
    ]
    keys += ["generated", "min_score", "image_weight"]
    junk = [
        "",
        "-1",
        "0",
        "1e308",
        "#1",
        "#",
        ":",
        "|",
        "||:-",
        "%",
        "'; DROP TABLE images;--",
        "\u202e",
        "😀",
    ]
    junk += ["../", "NaN", "2024-01-01", "a red circle:0.5 | #2:-1", "null", "[]", "{}", "9" * 30]
    for _ in range(60):
        params = {str(rng.choice(keys)): str(rng.choice(junk)) for _ in range(int(rng.integers(1, 4)))}
        reply = server.get("/api/search", params)
        assert reply.status < 500, (params, reply.body[:300])
        if reply.status >= 400:
            assert reply.error


# -- authentication ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded_server(indexed, toy_encoder, tmp_path_factory):
    settings, catalog = indexed
    served = serve_app(
        private_settings(settings, tmp_path_factory.mktemp("searchd-auth")),
        catalog,
        toy_encoder,
        token=TOKEN,
    )
    served.token = ""  # requests carry no token unless a test adds one
    yield served
    served.close()


@pytest.fixture
def guarded(guarded_server):
    """The token-protected server, with no wrong tokens counted yet (searchd/backoff.py)."""
    guarded_server.app.extensions["photoseek.auth"].backoff.clear()
    return guarded_server


@pytest.mark.parametrize(
    "path", ["/api/search?q=a+red+circle", "/api/facets", "/api/images/1", "/api/images/1/thumb", "/metrics"]
)
def test_without_the_token_api_routes_are_401(guarded, path):
    reply = guarded.get(path)
    assert_refused(reply, 401, "token")
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert_refused(guarded.get(path, headers={"Authorization": "Bearer wrong"}), 401)
    assert_refused(guarded.get(path, headers={"Authorization": TOKEN}), 401)  # not "Bearer TOKEN"
    assert_refused(guarded.get(path, headers={"Cookie": "photoseek_session=nope"}), 401)
    assert_refused(guarded.get(path, headers={"Cookie": f"photoseek_session={TOKEN}"}), 401)
    assert_refused(guarded.get(path, headers={"Cookie": f"photoseek_token={TOKEN}"}), 401)  # the old cookie


def test_with_the_token_api_routes_answer(guarded):
    reply = guarded.get("/api/search", {"q": "a red circle"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200 and reply.json()["results"]


def test_healthz_and_the_page_stay_open(guarded):
    assert guarded.get("/healthz").status == 200
    assert guarded.get("/").status in (200, 404)  # 404 only while web/index.html is missing
    assert guarded.get("/").status != 401


def test_login_sets_an_httponly_session_cookie_that_is_not_the_token(guarded):
    assert_refused(guarded.post_json("/api/login", {"token": "wrong"}), 401, "wrong token")
    assert_refused(guarded.post_json("/api/login", {"nope": 1}), 400, "token")
    reply = guarded.post_json("/api/login", {"token": TOKEN})
    assert reply.status == 200
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("photoseek_session=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
    session = cookie.split(";")[0]
    again = guarded.get("/api/facets", headers={"Cookie": session})
    assert again.status == 200


def test_the_environment_token_protects_too(indexed, toy_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOSEEK_AUTH_TOKEN", "from-the-environment-42")
    settings, catalog = indexed
    served = serve_app(private_settings(settings, tmp_path), catalog, toy_encoder)
    try:
        assert served.get("/api/facets").status == 401
        good = {"Authorization": "Bearer from-the-environment-42"}
        assert served.get("/api/facets", headers=good).status == 200
    finally:
        served.close()


# -- binding ------------------------------------------------------------------------------------------------
BINDS = [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("192.168.1.20", False), ("::", False), ("photos.example", False),
]  # fmt: skip


@pytest.mark.parametrize(("host", "loopback"), BINDS)
def test_only_loopback_binds_without_a_token(host, loopback):
    from indexer.cli import UserError
    from searchd.serve import check_bind, is_loopback

    assert is_loopback(host) is loopback
    check_bind(host, TOKEN)  # with a token anything goes
    if loopback:
        check_bind(host, "")
    else:
        with pytest.raises(UserError, match="without authentication"):
            check_bind(host, "")


def test_create_server_refuses_0000_without_a_token(indexed, toy_encoder, tmp_path, monkeypatch):
    from indexer.cli import UserError
    from searchd.app import create_app
    from searchd.serve import create_server

    monkeypatch.delenv("PHOTOSEEK_AUTH_TOKEN", raising=False)
    settings, catalog = indexed
    settings = private_settings(settings, tmp_path).replace(auth_token="")
    app = create_app(library_for(settings, toy_encoder, catalog))
    try:
        with pytest.raises(UserError, match="PHOTOSEEK_AUTH_TOKEN"):
            create_server(app, settings, "0.0.0.0", 0)
    finally:
        close_features(app)


def test_the_serve_command_refuses_before_loading_anything(tmp_path, monkeypatch):
    from searchd.cli import build_cli

    monkeypatch.delenv("PHOTOSEEK_AUTH_TOKEN", raising=False)
    result = CliRunner().invoke(build_cli(), ["--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert "without authentication" in result.output and "127.0.0.1" in result.output
