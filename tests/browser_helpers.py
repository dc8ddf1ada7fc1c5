"""Helpers for the browser tests: a real searchd over a loopback socket, and page utilities."""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in the page waits on a condition; this deadline only bounds a broken one. 30 s (Playwright's
# default) was too short for a generation step on a 2-core machine held busy by other work.
WAIT_MS = 120_000
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}


@contextmanager
def serve(settings, encoder=None) -> Iterator[str]:
    """searchd's real app served by waitress on 127.0.0.1:<free port> (tests/searchd_support.py's
    Served, which shuts the server down cleanly); yields its base URL.

    `encoder`: an already loaded encoder to share (the session's toy CLIP); None loads settings.model.
    """
    from tests.searchd_support import serve_app

    served = serve_app(settings, None, encoder, token=None)
    try:
        yield served.url
    finally:
        served.close()
        served.state.library.close()


def get_json(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def jpeg_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


# Builds a File from base64 bytes and dispatches a drag-and-drop of it, as a person dropping a file
# from their desktop would (dragenter, dragover, drop on the page body).
DROP_FILE_JS = """
async ([b64, name, type, events]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], name, { type });
  const data = new DataTransfer();
  data.items.add(file);
  for (const kind of events) {
    document.body.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: data }));
  }
}
"""


def drop_file(
    page, data: bytes, name: str, type_: str = "image/jpeg", events=("dragenter", "dragover", "drop")
):
    page.evaluate(DROP_FILE_JS, [base64.b64encode(data).decode(), name, type_, list(events)])


def tile_ids(page, n: int | None = None) -> list[int]:
    ids = page.eval_on_selector_all("#results .tile", "tiles => tiles.map(t => Number(t.dataset.id))")
    return ids if n is None else ids[:n]


def wait_for_results(page, previous: list[int] | None = None) -> list[int]:
    """Wait until the grid shows results (different from `previous`, if given) and no search is running."""
    page.wait_for_function(
        """(previous) => {
          const tiles = [...document.querySelectorAll('#results .tile')].map(t => Number(t.dataset.id));
          const busy = document.getElementById('results').getAttribute('aria-busy') === 'true';
          if (!tiles.length || busy) return false;
          const head = JSON.stringify(tiles.slice(0, previous ? previous.length : 0));
          return previous === null || head !== JSON.stringify(previous);
        }""",
        arg=previous,
    )
    return tile_ids(page)
