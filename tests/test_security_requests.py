"""searchd against hostile pages and hostile requests, over a real socket (issue 12, points 1, 2, 4, 5).

DNS rebinding (a foreign Host), cross-site requests (Origin, Sec-Fetch-Site, the X-Photoseek header),
the budgets every request is held to (list caps, body sizes, upload pixels and slots), inputs that
used to give a 500, exact Allow headers, and reverse proxies named in trusted_proxies.
"""

from __future__ import annotations

import io
import json
import re
import threading

import numpy as np
import pytest
from PIL import Image

from indexer.errors import Unavailable
from indexer.toyworld import Spec, render
from searchd import budgets
from tests.conftest import index_library
from tests.searchd_support import multipart, private_settings, serve_app, serve_library

TOKEN = "Tk-c0rrect-h0rse-battery-5taple"
EVIL = "evil.example"


@pytest.fixture(scope="module")
def server(indexed, toy_encoder, tmp_path_factory):
    settings, catalog = indexed
    served = serve_app(private_settings(settings, tmp_path_factory.mktemp("hardened")), catalog, toy_encoder)
    yield served
    served.close()


def assert_refused(reply, status: int, words: str = ""):
    assert reply.status == status, (reply.status, reply.body[:300])
    message = reply.error
    assert len(message) > 10 and words.lower() in message.lower(), message


def queries(served, kind: str) -> float:
    """How many searches of a kind the server has answered (its Prometheus counter)."""
    text = served.get("/metrics").body.decode()
    found = re.search(rf'^photoseek_queries_total{{kind="{kind}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def bomb_png(side: int = 12000) -> bytes:
    """A grey PNG of side x side pixels: ~140 KB for 144 MP."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def small_png() -> bytes:
    buf = io.BytesIO()
    render(Spec("red", "circle", "grey background"), (96, 96), np.random.default_rng(0)).save(
        buf, format="PNG"
    )
    return buf.getvalue()


# -- 1. DNS rebinding: only this server's own host names ---------------------------------------------------
FOREIGN_HOSTS = [EVIL, f"{EVIL}:8765", "127.0.0.1.evil.example", "localhost.evil.example", "192.168.1.20"]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize("path", ["/api/search?q=a", "/api/facets", "/api/images/1/file", "/", "/healthz"])
def test_a_foreign_host_name_gets_a_400_before_any_route(server, host, path):
    reply = server.get(path, headers={"Host": host})
    assert_refused(reply, 400, "allowed_hosts")
    assert b"results" not in reply.body and b"folders" not in reply.body


@pytest.mark.parametrize("host", ["", "a b", "evil.example:port", "[::1", "[zz]:80", "x" * 300])
def test_a_malformed_host_is_refused(server, host):
    assert server.get("/healthz", headers={"Host": host}).status == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "127.0.0.2", "[::1]"])
def test_loopback_names_are_answered(server, host):
    assert server.get("/api/search?q=a+red+circle", headers={"Host": f"{host}:{server.port}"}).status == 200


def test_allowed_hosts_and_a_wildcard_bind(indexed, toy_encoder, tmp_path):
    settings, catalog = indexed
    named = private_settings(settings, tmp_path).replace(allowed_hosts=("photos.example", ".home.arpa"))
    served = serve_app(named, catalog, toy_encoder)
    try:
        for host in ("photos.example", "PHOTOS.example:8765", "nas.home.arpa", "home.arpa"):
            assert served.get("/healthz", headers={"Host": host}).status == 200, host
        for host in (EVIL, "photos.example.evil.example", "evilhome.arpa", "10.0.0.5"):
            assert served.get("/healthz", headers={"Host": host}).status == 400, host
    finally:
        served.close()
    # Bound to every interface, the server answers to any of its addresses: an IP literal cannot be
    # rebound (a page can send it only from that address's own origin). Names still need allowed_hosts.
    everywhere = private_settings(settings, tmp_path / "any").replace(host="0.0.0.0")
    served = serve_app(everywhere, catalog, toy_encoder)
    try:
        assert served.get("/healthz", headers={"Host": "192.168.1.20:8765"}).status == 200
        assert served.get("/healthz", headers={"Host": "[fd00::5]:8765"}).status == 200
        assert served.get("/healthz", headers={"Host": "nas.local"}).status == 400
    finally:
        served.close()


# -- 2. cross-site requests ----------------------------------------------------------------------------------
def test_a_post_without_the_client_header_is_refused(server):
    before = queries(server, "text")
    reply = server.post_json("/api/search", {"q": "a red circle"}, headers={"X-Photoseek": None})
    assert_refused(reply, 403, "X-Photoseek: 1")
    assert_refused(server.post_json("/api/search", {"q": "a"}, headers={"X-Photoseek": "yes"}), 403)
    assert queries(server, "text") == before  # refused before any work
    assert server.post_json("/api/search", {"q": "a red circle"}).status == 200


def test_a_form_post_is_refused(server):
    body = b"q=a+red+circle"
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Photoseek": None}
    assert_refused(server.request("POST", "/api/search", body, form), 403)
    plain = {"Content-Type": "text/plain", "X-Photoseek": None}
    assert_refused(server.request("POST", "/api/login", b'{"token": "x"}', plain), 403)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_requests_a_browser_marks_as_from_another_site_are_refused(server, site):
    for path in ("/api/search?q=a+red+circle", "/api/images/1/thumb", "/api/facets", "/healthz"):
        assert_refused(server.get(path, headers={"Sec-Fetch-Site": site}), 403, "another site")
    assert server.get("/", headers={"Sec-Fetch-Site": site}).status == 200  # a link to the page works


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_requests_from_the_page_itself_or_typed_are_answered(server, site):
    assert server.get("/api/search?q=a+red+circle", headers={"Sec-Fetch-Site": site}).status == 200


def test_the_origin_must_be_this_server(server):
    own = f"http://127.0.0.1:{server.port}"
    others = [
        f"http://127.0.0.1:{int(server.port) + 1}",
        f"http://{EVIL}",
        "null",
        f"https://127.0.0.1:{server.port}",
    ]
    for origin in others:
        reply = server.post_json("/api/search", {"q": "a"}, headers={"Origin": origin})
        assert_refused(reply, 403, "may not use")
        assert_refused(server.get("/api/facets", headers={"Origin": origin}), 403)
    assert (
        "trusted_proxies" in server.post_json("/api/search", {"q": "a"}, headers={"Origin": others[-1]}).error
    )
    assert server.post_json("/api/search", {"q": "a"}, headers={"Origin": own}).status == 200


def test_a_cross_site_upload_is_not_decoded(server):
    before = queries(server, "image")
    body, ctype = multipart({"image": ("bomb.png", bomb_png())}, {})
    no_cors = {
        "Content-Type": ctype,
        "X-Photoseek": None,
        "Sec-Fetch-Site": "cross-site",
        "Origin": f"http://{EVIL}",
    }
    assert_refused(server.request("POST", "/api/search", body, no_cors), 403)
    assert_refused(server.request("POST", "/api/classify", body, no_cors), 403)
    assert queries(server, "image") == before


def test_a_cross_site_form_cannot_cancel_a_job(tmp_path, toy_encoder):
    from tests.conftest import make_settings

    served = serve_app(make_settings(tmp_path), None, toy_encoder)
    try:
        served.app.extensions["photoseek.jobs"].close()  # the worker stays stopped: the job stays queued
        reply = served.post_json("/api/generate", {"prompt": "a red circle", "steps": 5, "size": "32x32"})
        assert reply.status == 202, reply.body
        job = reply.json()["id"]
        form = {"Content-Type": "application/x-www-form-urlencoded", "X-Photoseek": None, "Origin": "null"}
        assert_refused(served.request("POST", f"/api/generate/{job}/cancel", b"", form), 403)
        form["Origin"] = f"http://127.0.0.1:{int(served.port) + 1}"
        assert_refused(served.request("POST", f"/api/generate/{job}/cancel", b"", form), 403)
        assert served.get(f"/api/generate/{job}").json()["status"] == "queued"
        assert served.request("POST", f"/api/generate/{job}/cancel").json()["status"] == "cancelled"
    finally:
        served.close()
        served.state.library.close()


# -- 4. budgets: every request costs bounded memory and time ----------------------------------------------
def test_an_upload_declaring_too_many_pixels_is_refused_before_decoding(server):
    before = queries(server, "image")
    reply = server.post_image("/api/search", bomb_png(), "bomb.png")
    assert_refused(reply, 400, "max_upload_megapixels")
    assert "12000x12000" in reply.error and "bomb.png" in reply.error
    assert_refused(
        server.post_image("/api/classify", bomb_png(), "bomb.png", {"labels": "a,b"}), 400, "50 MP"
    )
    assert queries(server, "image") == before
    assert server.post_image("/api/search", small_png(), "ok.png").status == 200


def test_upload_slots_bound_decoding_at_once(monkeypatch):
    budget = budgets.UploadBudget(max_megapixels=50, slots=1)
    monkeypatch.setattr(budgets, "SLOT_WAIT_S", 0.05)
    held, release = threading.Event(), threading.Event()

    def hold():
        with budget.slot():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(Unavailable, match="try again"), budget.slot():
            pass
    finally:
        release.set()
        holder.join(30)
    with budget.slot():  # free again once the first is done
        pass


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ([("minus", f"thing {i}") for i in range(17)], "minus values"),
        ([("like", str(i + 1)) for i in range(17)], "like values"),
        ([("tag", f"tag {i}") for i in range(17)], "tag filters"),
        ([("tag", "x") for _ in range(1000)], "tag filters"),
        ([("q", " | ".join(f"part {i}" for i in range(17)))], "parts in q"),
        ([("q", "a" + "|" * 16)], "parts in q"),  # counted by separators, before any parsing
        ([("tag", "t" * 101)], "longer than 100"),
    ],
)
def test_list_parameters_have_caps(server, params, words):
    assert_refused(server.get("/api/search", params), 400, words)


def test_3000_minus_parts_are_refused_at_once(server):
    before = queries(server, "text") + queries(server, "combined")
    params = [("q", "a red circle")] + [("minus", f"thing {i}") for i in range(3000)]
    assert_refused(server.get("/api/search", params), 400, "minus values: 3000")
    assert queries(server, "text") + queries(server, "combined") == before


def test_json_bodies_have_caps(server):
    assert_refused(
        server.post_json("/api/search", {"q": "a", "minus": [f"m{i}" for i in range(17)]}), 400, "values"
    )
    assert_refused(
        server.post_json("/api/search", {f"k{i}": 1 for i in range(65)}), 400, "fields in the JSON"
    )
    huge = json.dumps({"q": "a", "camera": "x" * (1024 * 1024)}).encode()
    assert_refused(server.post_json("/api/search", huge), 413, "1024 KB")


def test_forms_have_caps(server):
    body, ctype = multipart({"image": ("a.png", small_png())}, {f"f{i}": "1" for i in range(70)})
    assert_refused(server.request("POST", "/api/search", body, {"Content-Type": ctype}), 413, "64 fields")
    big, ctype = multipart({"image": ("a.png", small_png())}, {"q": "x" * (300 * 1024)})
    assert_refused(server.request("POST", "/api/search", big, {"Content-Type": ctype}), 413, "256 KB")


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ([f"label {i}" for i in range(40_000)], "too many labels: 40000"),
        (",".join(f"l{i}" for i in range(101)), "too many labels: 101"),
        (["cat", "d" * 101], "longer than 100"),
        (5, "comma-separated"),
        ({"cat": 1}, "comma-separated"),
    ],
)
def test_classify_labels_are_capped_before_any_work(server, labels, words):
    assert_refused(server.post_json("/api/classify", {"id": 1, "labels": labels}), 400, words)


# -- 5. bad input is a 4xx with a sentence, never a 500 ----------------------------------------------------
NESTED = b"[" * 100_000 + b"]" * 100_000
BAD_JSON = [
    (NESTED, "nests deeper"),
    (b'{"q": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "nests deeper"),
    (b'{"q": "\\ud800 lone"}', "surrogate"),
    (b'{"q": "a", "min_score": NaN}', "NaN"),
    (b'{"q": "a", "min_score": Infinity}', "Infinity"),
    (b'{"q": "a", "image_weight": 1e999}', "too large"),
    (b'{"q": "a", "limit": ' + b"9" * 5000 + b"}", "JSON"),
]


@pytest.mark.parametrize(("body", "words"), BAD_JSON)
@pytest.mark.parametrize("path", ["/api/search", "/api/classify", "/api/images/1/tags", "/api/generate"])
def test_json_that_used_to_break_a_route_is_a_400(server, path, body, words):
    reply = server.post_json(path, body)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:200])
    if path == "/api/search":
        assert words.lower() in reply.error.lower(), reply.error


def test_deeply_nested_json_at_an_unauthenticated_login_is_a_400(indexed, toy_encoder, tmp_path):
    settings, catalog = indexed
    served = serve_app(private_settings(settings, tmp_path), catalog, toy_encoder, token=TOKEN)
    served.token = ""
    try:
        assert_refused(served.post_json("/api/login", NESTED), 400, "nests deeper")
        assert_refused(served.post_json("/api/login", b'{"token": "\\udfff"}'), 400, "surrogate")
    finally:
        served.close()


@pytest.mark.parametrize(
    ("doc", "status"),
    [
        ({"name": "\ud800", "action": "add"}, 400),
        ({"name": "dog", "action": "add", "extra": [[[[1]]]]}, 200),
    ],
)
def test_tag_changes_with_odd_text(tmp_path, toy_encoder, fresh_library, doc, status):
    library, _ = index_library(tmp_path / "data", [fresh_library], toy_encoder)
    served = serve_library(library)
    try:
        raw = json.dumps(doc).encode()  # json.dumps writes a lone surrogate as \ud800, as a client would
        assert served.post_json("/api/images/1/tags", raw).status == status
    finally:
        served.close()
        library.close()


@pytest.mark.parametrize("image_id", [10**30, -1, 0, "12abc", True, 1.5, "#" + "9" * 40])
def test_numbers_that_overflow_or_are_no_ids_are_a_400(server, image_id):
    assert_refused(server.post_json("/api/classify", {"id": image_id, "labels": "cat,dog"}), 400, "image id")


@pytest.mark.parametrize("params", [{"like": str(10**30)}, {"q": f"#{10**30}"}, {"limit": str(10**30)}])
def test_overflowing_query_numbers_are_a_400(server, params):
    assert 400 <= server.get("/api/search", params).status < 500


def test_overflowing_path_ids_are_a_404(server):
    for path in (f"/api/images/{10**30}/tags", f"/api/images/{2**63}", f"/api/generate/{10**30}"):
        assert server.get(path).status == 404, path


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory, toy_encoder):
    """A library whose file names hold a newline, a tab and an escape sequence (all legal on Linux)."""
    base = tmp_path_factory.mktemp("odd-names")
    root = base / "photos"
    root.mkdir()
    names = ["new\nline.png", "tab\there.png", "esc\x1b[31mred.png"]
    for i, name in enumerate(names):
        render(Spec("red", "circle", "grey background"), (96, 96), np.random.default_rng(i)).save(
            root / name, format="PNG"
        )
    library, summary = index_library(base / "data", [root], toy_encoder)
    assert summary.new == len(names), summary.text()
    served = serve_library(library)
    yield served, names
    served.close()
    library.close()


def test_an_original_whose_name_holds_a_newline_is_served(odd_names):
    served, names = odd_names
    results = {r["name"]: r for r in served.search(limit=10)["results"]}
    assert set(results) == set(names)  # names come back intact, as JSON strings
    for name in names:
        reply = served.get(results[name]["file"])
        assert reply.status == 200, (name, reply.body[:200])
        disposition = reply.headers["content-disposition"]
        assert "\n" not in disposition and "\x1b" not in disposition and disposition.startswith("inline")
        assert served.get(results[name]["thumb"]).status == 200


def test_answers_are_always_valid_json(server):
    provider = server.app.json
    assert json.loads(provider.dumps({"score": float("nan"), "x": [float("inf"), 1.5]})) == {
        "score": None,
        "x": [None, 1.5],
    }
    reply = server.get("/api/search", {"q": "a red circle", "limit": "5"})
    assert b"NaN" not in reply.body and b"Infinity" not in reply.body
    json.loads(reply.body, parse_constant=lambda c: pytest.fail(f"{c} in an answer"))


# -- 8 (in part). Allow headers name only methods that work ---------------------------------------------
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/classify", "OPTIONS, POST"),
        ("/api/login", "OPTIONS, POST"),
        ("/api/search", "GET, HEAD, OPTIONS, POST"),
        ("/api/images/1/file", "GET, HEAD, OPTIONS"),
        ("/app.js", "GET, HEAD, OPTIONS"),
    ],
)
def test_allow_lists_only_methods_that_are_answered(server, path, allowed):
    options = server.request("OPTIONS", path)
    assert options.status == 200 and options.headers["allow"] == allowed
    refused = server.request("PUT", path)
    assert refused.status == 405 and refused.headers["allow"] == allowed
    if "GET" not in allowed:  # not the static route's 404: a 405 that names what works
        assert server.get(path).status == 405


def test_options_and_405_on_a_path_nothing_answers_are_404(server):
    assert server.request("OPTIONS", "/api/nothing-here").status == 404
    assert server.request("PUT", "/api/nothing-here").status == 404


# -- reverse proxies ---------------------------------------------------------------------------------------
@pytest.fixture
def behind_proxy(indexed, toy_encoder, tmp_path):
    """A token-protected server that trusts a proxy on loopback (where the tests connect from)."""
    settings, catalog = indexed
    trusting = private_settings(settings, tmp_path).replace(trusted_proxies=("127.0.0.1", "10.9.0.0/16"))
    served = serve_app(trusting, catalog, toy_encoder, token=TOKEN)
    served.token = ""
    yield served
    served.close()


def test_https_through_a_trusted_proxy_makes_the_cookie_secure(behind_proxy):
    https = {"X-Forwarded-Proto": "https"}
    reply = behind_proxy.post_json("/api/login", {"token": TOKEN}, headers=https)
    assert reply.status == 200 and "Secure" in reply.headers["set-cookie"]
    origin = {**https, "Origin": f"https://127.0.0.1:{behind_proxy.port}"}
    assert behind_proxy.post_json("/api/login", {"token": TOKEN}, headers=origin).status == 200


def test_forwarded_headers_from_anyone_else_are_ignored(indexed, toy_encoder, tmp_path):
    settings, catalog = indexed
    served = serve_app(private_settings(settings, tmp_path), catalog, toy_encoder, token=TOKEN)
    served.token = ""
    try:
        reply = served.post_json("/api/login", {"token": TOKEN}, headers={"X-Forwarded-Proto": "https"})
        assert reply.status == 200 and "Secure" not in reply.headers["set-cookie"]
        auth = served.app.extensions["photoseek.auth"]
        for _ in range(8):
            served.get("/api/facets", headers={"Authorization": "Bearer nope", "X-Forwarded-For": "10.1.1.1"})
        # Counted against the real peer (127.0.0.1), not the address the request claimed.
        assert served.get("/api/facets", headers={"Authorization": "Bearer nope"}).status == 429
        assert auth.backoff.wait_s("10.1.1.1") == 0
    finally:
        served.close()


def test_wrong_tokens_are_counted_per_forwarded_client(behind_proxy):
    def attempt(client: str, token: str = "nope"):
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"{client}, 10.9.0.7"}
        return behind_proxy.get("/api/facets", headers=headers)

    for _ in range(5):
        assert attempt("203.0.113.5").status == 401
    assert attempt("203.0.113.5").status == 429
    assert attempt("203.0.113.5", TOKEN).status == 429  # while it must wait, not even the right one
    assert attempt("198.51.100.9").status == 401  # another client is not slowed down
    assert attempt("198.51.100.9", TOKEN).status == 200
