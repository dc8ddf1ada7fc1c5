"""The page in web/, driven in Debian's headless Chromium against the real searchd.

A real app (searchd.app.create_app) serves the toy library indexed with the toy CLIP over a loopback
socket; the browser types, clicks, drops files and presses keys as a person would, and the results
are checked against the library's manifest (what each picture really shows).
Screenshots of the page land in test-artifacts/ (desktop and mobile; grid and viewer).
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from tests.browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    MOBILE,
    WAIT_MS,
    drop_file,
    get_json,
    jpeg_bytes,
    serve,
    tile_ids,
    wait_for_results,
)
from tests.conftest import index_library, make_settings, read_manifest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"no Chromium at {CHROMIUM}: `make system-deps` (apt-get install chromium) installs it",
    ),
]

# A POSIX file name cannot hold "/", so the closing tag uses a backslash; <img onerror> needs no "/".
XSS_NAME = "<script>alert(1)<\\script>.jpg"
XSS_FOLDER = "<img src=x onerror=alert(2)> & co"  # no "/": it is a folder name
TOKEN = "correct-horse-battery-staple"  # a strong token (searchd/tokens.py): no spaces
# A paste of an image file, as from the clipboard (Ctrl+V after copying a photo).
PASTE_FILE_JS = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const init = { clipboardData: data, bubbles: true, cancelable: true };
  document.dispatchEvent(new ClipboardEvent("paste", init));
}"""
# Resolves once the images in view have loaded, so screenshots show photos rather than grey squares.
VISIBLE_IMAGES_DECODED = """Promise.all([...document.images]
  .filter((img) => img.getBoundingClientRect().top < innerHeight)
  .map((img) => img.decode().catch(() => null)))"""


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.js_errors, page.alerts = errors, dialogs
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not dialogs, f"the page opened dialogs (alert/confirm): {dialogs}"


@pytest.fixture(scope="module")
def site(indexed, toy_encoder):
    """Base URL of searchd serving the session's indexed toy library."""
    settings, _catalog = indexed
    with serve(settings, toy_encoder) as url:
        yield url


@pytest.fixture(scope="module")
def manifest(library):
    return {str(Path(k).resolve()): v for k, v in read_manifest(library).items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, toy_encoder):
    """A four-photo library whose names are markup; (settings, root)."""
    from indexer.toyworld import Spec, render

    root = tmp_path_factory.mktemp("tiny-photos")
    rng = np.random.default_rng(5)
    folder = root / XSS_FOLDER
    folder.mkdir()
    names = [XSS_NAME, "<img src=x onerror=alert(3)>.jpg", 'quote " & amp.jpg', "Ünïcødé ✓.jpg"]
    for name, spec in zip(
        names,
        [
            Spec("red", "circle", "grey background"),
            Spec("blue", "square", "white background"),
            Spec("green", "star", "grey background"),
            Spec("yellow", "triangle", "blue background"),
        ],
        strict=True,
    ):
        (folder / name).write_bytes(jpeg_bytes(render(spec, (320, 240), rng)))
    data_dir = tmp_path_factory.mktemp("tiny-data")
    indexed_lib, summary = index_library(data_dir, [root], toy_encoder)
    settings = indexed_lib.settings
    assert summary.new == len(names), summary.text()
    return settings, root, toy_encoder


def record(site: str, manifest: dict, image_id: int) -> dict:
    meta = get_json(f"{site}api/images/{image_id}")
    return manifest[str(Path(meta["path"]).resolve())]


def kind(rec: dict) -> tuple[str, str]:
    return rec["colour"], rec["shape"]


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5000
    return path


def type_query(page, text: str) -> list[int]:
    """Type as a person does; the search starts once typing pauses (and writes the URL then)."""
    page.locator("#q").press_sequentially(text, delay=20)
    page.wait_for_function("(q) => new URLSearchParams(location.search).get('q') === q", arg=text)
    return wait_for_results(page)


# ---- tests ---------------------------------------------------------------------------------------


def test_typing_a_query_shows_matching_photos_and_the_url_keeps_it(page, site, manifest):
    page.goto(site)
    browse = wait_for_results(page)
    assert "newest first" in page.inner_text("#status")

    ids = type_query(page, "a red circle")
    top = [record(site, manifest, i) for i in ids[:8]]
    red_circles = sum(1 for r in manifest.values() if kind(r) == ("red", "circle"))
    want = min(8, red_circles)
    hits = sum(kind(r) == ("red", "circle") for r in top[:want])
    assert kind(top[0]) == ("red", "circle"), top[0]
    assert hits >= want - 1, [kind(r) for r in top]
    assert "best matches" in page.inner_text("#status")
    # Thumbnails really load, with the file name as alt text and the score as a label.
    first = page.locator("#results .tile").first
    first.locator("img").evaluate("img => img.decode()")
    assert first.locator("img").evaluate("img => img.naturalWidth") > 0
    assert first.locator("img").get_attribute("alt") == Path(top[0]["path"]).name
    assert float(first.get_attribute("data-score")) > 0

    # The query lives in the URL: a reload shows the same results, back returns to browsing.
    assert parse_qs(urlparse(page.url).query)["q"] == ["a red circle"]
    page.reload()
    assert wait_for_results(page)[:8] == ids[:8]
    assert page.input_value("#q") == "a red circle"
    page.go_back()
    page.wait_for_function("() => document.querySelector('#q').value === ''")
    assert wait_for_results(page)[:8] == browse[:8]


def test_viewer_keyboard_navigation_and_more_like_this(page, site, manifest):
    page.goto(f"{site}?q=a+blue+square")
    ids = wait_for_results(page)

    # Tiles are buttons: focus one with the keyboard and open it with Enter.
    page.locator("#results .tile").first.focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.index") == "1"
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    assert viewer.get_attribute("data-id") == str(ids[1])
    rec = record(site, manifest, ids[1])
    assert page.inner_text("#viewer-name") == Path(rec["path"]).name
    page.wait_for_function("() => document.querySelector('#viewer-meta').textContent.includes('Size')")
    meta = page.inner_text("#viewer-meta")
    assert f"{rec['width']} × {rec['height']}" in meta
    if rec["camera"]:
        assert rec["camera"] in meta

    # ← and → walk the results; Esc closes and gives focus back to the photo last shown.
    page.keyboard.press("ArrowRight")
    assert viewer.get_attribute("data-id") == str(ids[2])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert viewer.get_attribute("data-id") == str(ids[0])
    page.keyboard.press("ArrowLeft")  # already the first: stays
    assert viewer.get_attribute("data-id") == str(ids[0])
    page.keyboard.press("Escape")
    assert not viewer.is_visible()
    # The dialog first gives focus back to the tile that opened it (1); its "close" event, a task
    # later, moves it to the photo last shown (0).
    page.wait_for_function("() => document.activeElement?.dataset.index === '0'")
    page.keyboard.press("Space")
    assert viewer.is_visible() and viewer.get_attribute("data-id") == str(ids[0])

    # "More like this": a new search by the photo; the results are of its kind.
    liked = record(site, manifest, ids[0])
    page.click("#viewer-like")
    assert not viewer.is_visible()
    like_ids = wait_for_results(page)
    assert parse_qs(urlparse(page.url).query) == {"like": [str(ids[0])]}
    assert like_ids[0] == ids[0]  # the photo itself is the most similar
    # Image-to-image neighbours in the toy CLIP also weigh background and size, so not all 8 share the
    # kind; at random about 8/32 = 0.25 of them would.
    same = [kind(record(site, manifest, i)) == kind(liked) for i in like_ids[1:9]]
    assert sum(same) >= 3, (kind(liked), same)
    assert page.locator(".qchip").count() == 1
    assert Path(liked["path"]).name in page.inner_text(".qchip")


def test_dropping_an_image_searches_by_it(page, site, manifest):
    from indexer.toyworld import Spec, render

    counts = Counter(kind(r) for r in manifest.values())
    colour, shape = next(k for k, _n in counts.most_common() if k != ("red", "circle"))
    background = "grey background"
    image = render(Spec(colour, shape, background), (400, 300), np.random.default_rng(99))

    page.goto(site)
    browse = wait_for_results(page)
    drop_file(page, jpeg_bytes(image), "holiday.jpg", events=("dragenter", "dragover"))
    assert page.locator("#drop-overlay").is_visible()
    drop_file(page, jpeg_bytes(image), "holiday.jpg", events=("drop",))
    ids = wait_for_results(page)
    assert not page.locator("#drop-overlay").is_visible()
    top = [kind(record(site, manifest, i)) for i in ids[:5]]
    assert top[0] == (colour, shape), top
    assert sum(k == (colour, shape) for k in top) >= 2, top
    chip = page.locator(".qchip")
    assert chip.count() == 1 and "holiday.jpg" in chip.inner_text()

    # Removing the chip goes back to browsing.
    page.click(".qchip-remove")
    assert wait_for_results(page)[:8] == browse[:8]
    assert page.locator(".qchip").count() == 0

    # Pasting an image (from the clipboard) does the same.
    page.evaluate(PASTE_FILE_JS, [base64.b64encode(jpeg_bytes(image)).decode(), "pasted.jpg"])
    ids = wait_for_results(page)
    assert kind(record(site, manifest, ids[0])) == (colour, shape)
    assert "pasted.jpg" in page.inner_text(".qchip")

    # A file that is not an image gets a sentence, not a crash.
    drop_file(page, b"hello", "notes.txt", type_="text/plain")
    assert "not an image" in page.inner_text("#error-text")


def test_filters_narrow_the_results_and_show_as_chips(page, site, manifest):
    in_tokyo = [r for r in manifest.values() if r["path"].startswith("Tokyo 2023/")]
    tokyo = Counter(r["camera"] for r in in_tokyo if r["camera"])
    assert len(tokyo) > 1, "the toy library should mix cameras within an album"
    camera = tokyo.most_common(1)[0][0]

    page.goto(f"{site}?q=a+photo")
    wait_for_results(page)
    page.click("#filters-button")
    assert page.locator("#filters-panel").is_visible()
    page.select_option("#f-camera", camera)
    ids = wait_for_results(page)
    assert parse_qs(urlparse(page.url).query)["camera"] == [camera]
    assert {record(site, manifest, i)["camera"] for i in ids[:20]} == {camera}
    assert page.locator('#filter-chips [data-filter="camera"]').inner_text().strip() == f"Camera: {camera}"

    # A folder filter as well; its option reads as the album's name, not the absolute path.
    folder_option = page.locator("#f-folder option", has_text="Tokyo 2023")
    folder = folder_option.get_attribute("value")
    assert folder.endswith("Tokyo 2023") and folder_option.inner_text().startswith("Tokyo 2023")
    page.select_option("#f-folder", folder)
    ids = wait_for_results(page)
    recs = [record(site, manifest, i) for i in ids]
    assert len(recs) == tokyo[camera]
    assert all(r["camera"] == camera and r["path"].startswith("Tokyo 2023/") for r in recs)
    assert page.locator("#filters-count").inner_text() == "2"

    # Removing the camera chip keeps the folder filter.
    page.click('#filter-chips [data-filter="camera"]')
    ids = wait_for_results(page)
    recs = [record(site, manifest, i) for i in ids]
    assert len(recs) == len(in_tokyo)
    assert all(r["path"].startswith("Tokyo 2023/") for r in recs)
    assert "camera" not in parse_qs(urlparse(page.url).query)

    # A minimum score drops the weaker matches.
    scores = page.eval_on_selector_all("#results .tile", "ts => ts.map(t => Number(t.dataset.score))")
    threshold = round(min(0.6, sorted(scores)[len(scores) // 2]), 2)
    page.eval_on_selector(
        "#f-min-score",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('change', { bubbles: true })); }",
        threshold,
    )
    wait_for_results(page)
    kept = page.eval_on_selector_all("#results .tile", "ts => ts.map(t => Number(t.dataset.score))")
    assert kept and len(kept) < len(scores)
    assert all(x >= threshold - 0.005 for x in kept)  # labels are rounded to 2 decimals
    assert parse_qs(urlparse(page.url).query)["min_score"] == [str(threshold)]


def test_endless_scroll_loads_every_photo_once(page, site, manifest):
    page.goto(site)
    first = wait_for_results(page)
    assert len(first) < len(manifest)  # paged
    for _ in range(20):
        if len(tile_ids(page)) == len(manifest):
            break
        count = len(tile_ids(page))
        page.mouse.wheel(0, 20000)
        page.wait_for_function(
            "([n, total]) => document.querySelectorAll('#results .tile').length > n || n === total",
            arg=[count, len(manifest)],
        )
    ids = tile_ids(page)
    assert len(ids) == len(set(ids)) == len(manifest)


def test_server_errors_are_shown_as_sentences(page, site):
    page.goto(f"{site}?q=red+circle:-1")
    page.wait_for_selector("#error", state="visible")
    assert "positive weight" in page.inner_text("#error-text")


def test_markup_in_file_names_is_shown_as_text(page, tiny):
    settings, _root, encoder = tiny
    with serve(settings, encoder) as url:
        page.goto(url)
        wait_for_results(page)
        names = page.eval_on_selector_all("#results .tile", "tiles => tiles.map(t => t.dataset.name)")
        assert XSS_NAME in names and "<img src=x onerror=alert(3)>.jpg" in names
        tile = page.locator("#results .tile").nth(names.index(XSS_NAME))
        assert tile.inner_text().startswith(XSS_NAME)  # the hover label, as text
        assert tile.locator("img").get_attribute("alt") == XSS_NAME
        tile.click()
        assert page.inner_text("#viewer-name") == XSS_NAME
        page.wait_for_function("() => document.querySelector('#viewer-meta').textContent.includes('Path')")
        assert XSS_FOLDER in page.inner_text("#viewer-meta")
        # No element was made from the names: only the page's own <script> exists, no <img src=x>.
        assert page.evaluate("document.querySelectorAll('script').length") == 1
        assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        page.keyboard.press("Escape")
        page.click("#filters-button")
        assert page.locator("#f-folder option", has_text=XSS_FOLDER).count() == 1


def test_an_empty_library_says_how_to_index(page, tmp_path, toy_encoder):
    with serve(make_settings(tmp_path), toy_encoder) as url:
        page.goto(url)
        page.wait_for_selector("#empty", state="visible")
        assert page.inner_text("#empty-title") == "No photos yet"
        assert "photoseek index" in page.inner_text("#empty-code")


def test_a_token_protected_server_asks_for_the_token(page, tiny):
    settings, _root, encoder = tiny
    with serve(dataclasses.replace(settings, auth_token=TOKEN), encoder) as url:
        page.goto(url)
        login = page.locator("#login")
        login.wait_for(state="visible")
        page.fill("#login-token", "wrong")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => document.querySelector('#login-message').textContent.includes('not accepted')"
        )
        assert login.is_visible()
        page.fill("#login-token", TOKEN)
        page.keyboard.press("Enter")
        wait_for_results(page)
        assert not login.is_visible()
        # The thumbnails load too: the login set the cookie that <img> requests carry.
        img = page.locator("#results .tile img").first
        img.evaluate("img => img.decode()")
        assert img.evaluate("img => img.naturalWidth") > 0


def test_screenshots_desktop_and_mobile(browser, site):
    """Grid and viewer at 1280x800 and 390x844, saved for people to look at; nothing overflows."""
    shots = []
    for label, viewport in (("desktop", DESKTOP), ("mobile", MOBILE)):
        context = browser.new_context(
            viewport=viewport, device_scale_factor=1, is_mobile=label == "mobile", has_touch=label == "mobile"
        )
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        page.goto(f"{site}?q=a+green+star")
        wait_for_results(page)
        page.evaluate(VISIBLE_IMAGES_DECODED)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shots.append(screenshot(page, f"{label}-grid.png"))
        page.click("#filters-button")
        shots.append(screenshot(page, f"{label}-filters.png"))
        page.click("#filters-button")
        page.locator("#results .tile").nth(2).click()
        page.wait_for_function("() => document.querySelector('#viewer-meta').textContent.includes('Path')")
        page.locator("#viewer-image").evaluate("img => img.decode().catch(() => null)")
        shots.append(screenshot(page, f"{label}-viewer.png"))
        context.close()
    assert all(s.exists() for s in shots)


def test_the_page_fetches_nothing_from_other_hosts(page, site):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(site)
    wait_for_results(page)
    assert requests and all(u.startswith(site) or u.startswith(("data:", "blob:")) for u in requests), (
        requests
    )
