"""The Flask app factory: create_app(library) wires the blueprints and the error handlers to a Library.

Nothing happens at import; everything hangs off the app (app.extensions["photoseek"]), so tests can
run several apps side by side, each over its own data dir.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

from indexer.library import Library
from indexer.settings import Settings
from searchd import auth, errors, security
from searchd.ingest import index_generated
from searchd.metrics import Metrics
from searchd.thumbs import ThumbCache

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the repo's web/ (editable install)
# The page loads its own script and styles only; shown data (file names, captions) can never run.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class Int64Converter(IntegerConverter):
    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


@dataclass
class State:
    """What the routes share: found at current_app.extensions["photoseek"]."""

    settings: Settings
    library: Library
    metrics: Metrics
    thumbs: ThumbCache


def create_app(library: Library) -> Flask:
    """An app over an open Library (indexer/library.py): its catalog, models and searcher. Nothing is
    loaded here: the searcher opens its vector index on the first request that needs it, and the
    model on the first query (`photoseek serve` starts loading it in the background at once)."""
    settings = library.settings
    app = Flask(__name__, static_folder=str(WEB_DIR), static_url_path="")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_upload_mb * 1024 * 1024)
    app.json.sort_keys = False  # answers keep the documented field order
    app.url_map.merge_slashes = False
    # Every feature's <int:...> ids are SQLite/FAISS ids: a larger number is a 404, not an overflow.
    app.url_map.converters["int"] = Int64Converter  # "//etc/passwd" is a 404, not a redirect to "/etc/passwd"
    metrics = Metrics(library)
    thumbs = ThumbCache(library.layout.thumbs, settings.thumb_size, settings.max_megapixels)
    app.extensions["photoseek"] = State(settings, library, metrics, thumbs)

    errors.init_app(app, settings.max_upload_mb)
    security.init_app(app, settings)  # host, origin, size checks before auth and every route
    auth.init_app(app, auth.configured_token(settings))
    from searchd import generate_api, health, images_api, search_api, tags_api

    for module in (search_api, images_api, health):
        app.register_blueprint(module.bp)
    # Other features hang their routes on the same app and share the loaded model.
    generate_api.init_app(
        app,
        settings,
        library.torch_encoder,
        catalog=library.catalog,
        on_result=index_generated(library),
        models=library.models,
    )
    tags_api.init_app(app, library)

    @app.get("/")
    def page():
        if not (WEB_DIR / "index.html").is_file():
            abort(404, f"the page is missing: {WEB_DIR / 'index.html'} does not exist")
        return app.send_static_file("index.html")

    @app.after_request
    def headers(response):
        if response.status_code >= 400:
            metrics.http_errors.labels(str(response.status_code)).inc()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        if request.path.startswith("/api/") and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"  # answers change as the indexer works
        return response

    return app
