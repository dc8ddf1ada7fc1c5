"""Hostile pages in a real browser (issue 12, points 1-3): Debian's Chromium against the real searchd.

A second origin, served on another port of the same host (so a *same-site* page, which SameSite
cookies do not stop), tries what a malicious page can: a form that submits itself to cancel a
generation job, a no-cors upload of a 144 MP image, credentialed fetches, an <img> of a thumbnail, and
reading the login cookie. A DNS-rebinding page (its own host name resolving to 127.0.0.1) tries to
read the API as same-origin. Each attempt is refused by searchd before any work; the page itself keeps
working, POSTs included. What the server did is read back from its own metrics and job list.
"""

from __future__ import annotations

import base64
import io
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from indexer.toyworld import build_library
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, DESKTOP, WAIT_MS, wait_for_results
from tests.conftest import index_library
from tests.searchd_support import serve_library
from tests.watch_support import wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}: `make system-deps`"),
]

TOKEN = "Tk-c0rrect-h0rse-battery-5taple"
EVIL = "evil.example"


# ---- the attacker's web server --------------------------------------------------------------------
class Attacker:
    """Serves the pages a test registers, on 127.0.0.1:<another port>."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                body = pages.get(self.path.split("?")[0], "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.pages = pages
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="attacker", daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def bomb_png_b64() -> str:
    buf = io.BytesIO()
    Image.new("L", (12000, 12000), 128).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


ATTACK = """<!doctype html><meta charset="utf-8"><title>cute cats</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="{target}/api/generate/{job}/cancel" target="sink">
  <input name="x" value="1"></form>
<img id="thumb" src="{target}/api/images/1/thumb">
<script>
window.results = {{}};
(async () => {{
  document.getElementById("f").submit();
  const bytes = Uint8Array.from(atob("{bomb}"), (c) => c.charCodeAt(0));
  const form = new FormData();
  form.append("image", new Blob([bytes], {{ type: "image/png" }}), "cat.png");
  try {{
    const init = {{ method: "POST", mode: "no-cors", body: form, credentials: "include" }};
    await fetch("{target}/api/search", init);
    results.upload = "sent";
  }} catch (e) {{ results.upload = "blocked: " + e; }}
  try {{
    const r = await fetch("{target}/api/search?q=a+red+circle", {{ credentials: "include" }});
    results.read = "read " + r.status + " " + (await r.text());
  }} catch (e) {{ results.read = "blocked"; }}
  try {{
    const r = await fetch("{target}/api/generate/{job}/cancel", {{ method: "POST", credentials: "include",
      headers: {{ "X-Photoseek": "1" }} }});
    results.preflighted = "read " + r.status;
  }} catch (e) {{ results.preflighted = "blocked"; }}
  const img = document.getElementById("thumb");
  await new Promise((ok) => (img.complete ? ok() : (img.onload = img.onerror = ok)));
  results.thumb = img.naturalWidth;
  results.cookie = document.cookie;
  results.done = true;
}})();
</script>"""

REBOUND = """<!doctype html><meta charset="utf-8"><title>rebound</title><script>
window.results = {};
(async () => {
  for (const path of ["api/search?q=a+red+circle", "api/facets", "api/images/1/file", "healthz", "?page"]) {
    try {
      const r = await fetch(path);
      results[path] = [r.status, (await r.text()).slice(0, 300)];
    } catch (e) { results[path] = [0, "fetch failed: " + e]; }
  }
  results.done = true;
})();
</script>"""


# ---- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    # evil.example resolves to this machine, as a rebinding attacker's name does once it has switched.
    # Chromium's own Local Network Access checks would stop a public page's requests to this machine
    # before searchd saw them; Firefox, Safari and older Chromiums have none, so they are turned off:
    # what is tested is that searchd refuses on its own.
    args = [
        *CHROMIUM_ARGS,
        f"--host-resolver-rules=MAP {EVIL} 127.0.0.1",
        "--disable-features=LocalNetworkAccessChecks",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-sec-photos")
    build_library(root, 8, 5)
    return root


@pytest.fixture
def attacker():
    site = Attacker()
    yield site
    site.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def served_library(tmp_path: Path, photos: Path, encoder, token: str = ""):
    library, summary = index_library(tmp_path / "data", [photos], encoder, auth_token=token)
    assert summary.new == 8, summary.text()
    served = serve_library(library, token)
    served.app.extensions["photoseek.jobs"].close()  # a job queued here stays queued
    reply = served.post_json("/api/generate", {"prompt": "a red circle", "steps": 5, "size": "32x32"})
    assert reply.status == 202, reply.body
    return served, library, reply.json()["id"]


def counter(served, name: str, label: str, value: str) -> float:
    text = served.get("/metrics").body.decode()
    found = re.search(rf'^{name}_total{{{label}="{value}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def attack(context, attacker, served, job: int) -> dict:
    """Open the attacker's page in the browser and let it try everything; returns what it saw."""
    target = f"http://127.0.0.1:{served.port}"
    attacker.pages["/cats.html"] = ATTACK.format(target=target, job=job, bomb=bomb_png_b64())
    page = context.new_page()
    page.goto(attacker.url("/cats.html"))
    page.wait_for_function("() => window.results && window.results.done === true", timeout=WAIT_MS)
    seen = page.evaluate("() => window.results")
    page.close()
    return seen


# ---- 1. DNS rebinding -------------------------------------------------------------------------------
def test_a_rebound_host_name_reads_nothing(context, tmp_path, photos, toy_encoder):
    served, library, _ = served_library(tmp_path, photos, toy_encoder)
    try:
        page = context.new_page()
        # The attacker's page first comes from the attacker (here: handed to the browser), then its
        # name points at 127.0.0.1: the page's own fetches go to searchd, as same-origin requests.
        rebound = f"http://{EVIL}:{served.port}/"
        page.route(rebound, lambda route: route.fulfill(status=200, content_type="text/html", body=REBOUND))
        page.goto(rebound)
        page.wait_for_function("() => window.results && window.results.done === true", timeout=WAIT_MS)
        seen = page.evaluate("() => window.results")
        for path in ("api/search?q=a+red+circle", "api/facets", "api/images/1/file", "healthz", "?page"):
            status, body = seen[path]
            assert status == 400 and "allowed_hosts" in body, (path, status, body)
            assert "results" not in body and "folders" not in body
        # The same fetches from the server's own origin are answered: the 400s are the host check.
        page.goto(served.url)
        ok = page.evaluate("async () => (await fetch('api/facets')).status")
        assert ok == 200
    finally:
        served.close()
        library.close()


# ---- 2. cross-site requests from another port ---------------------------------------------------------
def test_another_origin_cannot_act_or_read(context, attacker, tmp_path, photos, toy_encoder):
    served, library, job = served_library(tmp_path, photos, toy_encoder)
    try:
        refused_before = counter(served, "photoseek_http_errors", "status", "403")
        images_before = counter(served, "photoseek_queries", "kind", "image")
        seen = attack(context, attacker, served, job)
        assert seen["read"] == "blocked" and seen["preflighted"] == "blocked", seen  # CORS: never granted
        assert seen["thumb"] == 0, seen
        # The form, the no-cors upload, the credentialed read and the thumbnail all reached searchd
        # and were refused there (403) before any work; the preflighted POST never left the browser.
        wait_for(
            lambda: counter(served, "photoseek_http_errors", "status", "403") >= refused_before + 4,
            60,
            "searchd to refuse the attacker's four requests",
        )
        assert counter(served, "photoseek_queries", "kind", "image") == images_before  # nothing decoded
        assert served.get(f"/api/generate/{job}").json()["status"] == "queued"
    finally:
        served.close()
        library.close()


# ---- 3. the login cookie -----------------------------------------------------------------------------
def test_the_session_cookie_is_no_token_and_no_use_to_another_origin(
    context, attacker, tmp_path, photos, toy_encoder
):
    served, library, job = served_library(tmp_path, photos, toy_encoder, token=TOKEN)
    try:
        page = context.new_page()
        page.goto(served.url)
        page.locator("#login").wait_for(state="visible")
        page.fill("#login-token", TOKEN)
        page.keyboard.press("Enter")
        wait_for_results(page)
        cookies = [c for c in context.cookies() if c["name"] == "photoseek_session"]
        assert len(cookies) == 1 and cookies[0]["value"] != TOKEN and TOKEN not in cookies[0]["value"]
        assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""

        # A page on another port of this host is same-site: the browser does send the cookie with it.
        refused_before = counter(served, "photoseek_http_errors", "status", "403")
        seen = attack(context, attacker, served, job)
        assert "photoseek_session" not in seen["cookie"] and TOKEN not in seen["cookie"]
        assert seen["read"] == "blocked" and seen["thumb"] == 0, seen
        wait_for(
            lambda: counter(served, "photoseek_http_errors", "status", "403") >= refused_before + 4,
            60,
            "searchd to refuse the attacker's four requests",
        )
        assert served.get(f"/api/generate/{job}").json()["status"] == "queued"

        # The page still works, POSTs included (it sends X-Photoseek), and the session still holds.
        answer = page.evaluate(
            """async () => (await window.photoseek.api.request("api/search",
                 { method: "POST", json: { q: "a red circle", limit: 3 } })).results.length"""
        )
        assert answer == 3
        cancelled = page.evaluate(
            f"""async () => (await window.photoseek.api.request("api/generate/{job}/cancel",
                 {{ method: "POST" }})).status"""
        )
        assert cancelled == "cancelled"
        # Logging out ends the session on the server: the old cookie is refused from then on.
        session = cookies[0]["value"]
        assert page.evaluate(
            "async () => (await window.photoseek.api.request('api/logout', {method: 'POST'})).ended"
        )
        old_cookie = {"Cookie": f"photoseek_session={session}", "Authorization": None}  # no bearer token
        assert served.get("/api/facets", headers=old_cookie).status == 401
    finally:
        served.close()
        library.close()
