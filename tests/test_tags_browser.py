"""Tag chips in the page's viewer (web/tags.js), driven in headless Chromium against the real searchd."""

from __future__ import annotations

import os
import threading

import pytest

from tests.browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    WAIT_MS,
    get_json,
    wait_for_results,
)
from tests.conftest import library_for
from tests.test_tags import index_with_tags

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory, toy_encoder):
    from waitress import create_server

    from indexer.toyworld import build_library
    from searchd.app import create_app

    root = tmp_path_factory.mktemp("chip-photos")
    build_library(root, 24, seed=12)
    settings, catalog = index_with_tags(tmp_path_factory.mktemp("chip-data"), root, toy_encoder)
    app = create_app(library_for(settings, toy_encoder, catalog))
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/"
    server.close()
    thread.join(timeout=10)


@pytest.fixture
def page(site):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=DESKTOP)
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def server_states(site: str, image_id: str) -> dict[str, str]:
    return {t["name"]: t["state"] for t in get_json(f"{site}api/images/{image_id}/tags")["tags"]}


def test_tag_chips_accept_reject_add_remove(page, site):
    page.goto(site)
    wait_for_results(page)
    page.locator("#results .tile").first.click()
    image_id = page.locator("#viewer").get_attribute("data-id")
    panel = page.locator("#tags-panel")
    panel.locator(".tag-suggested").first.wait_for()
    shown = panel.locator(".tag-suggested").evaluate_all("chips => chips.map(c => c.dataset.tag)")
    assert shown == [n for n, st in server_states(site, image_id).items() if st == "suggested"]

    first, second = shown[0], shown[1]
    panel.get_by_role("button", name=f"Accept tag {first}", exact=True).click()
    panel.locator(f'.tag-accepted[data-tag="{first}"]').wait_for()
    panel.get_by_role("button", name=f"Reject tag {second}", exact=True).click()
    panel.locator(f'.tag-rejected[data-tag="{second}"]').wait_for(state="attached")
    assert panel.locator(f'.tag-suggested[data-tag="{second}"]').count() == 0

    panel.get_by_role("textbox", name="Add a tag").fill("Our Trip")
    panel.get_by_role("textbox", name="Add a tag").press("Enter")
    panel.locator('.tag-accepted[data-tag="our trip"]').wait_for()
    now = server_states(site, image_id)
    assert (now[first], now[second], now["our trip"]) == ("accepted", "rejected", "accepted")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tags-viewer.png"))

    panel.get_by_role("button", name="Remove tag our trip", exact=True).click()
    panel.locator('.tag-accepted[data-tag="our trip"]').wait_for(state="detached")
    assert "our trip" not in server_states(site, image_id)
