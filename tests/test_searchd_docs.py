"""The API's descriptions stay in step with the routes the app really registers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import library_for, make_settings
from tests.searchd_support import close_features

API_DOC = Path(__file__).parent.parent / "docs" / "api.md"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, toy_encoder):
    from searchd.app import create_app

    library = library_for(make_settings(tmp_path_factory.mktemp("docs-data")), toy_encoder)
    app = create_app(library)
    yield app
    close_features(app)
    library.close()


def routes(app) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) of every route but Flask's static files."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        out |= {(m, path) for m in rule.methods - IGNORED_METHODS}
    return out


def test_every_api_route_is_in_the_openapi_description(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    registered = routes(app)
    missing = sorted(r for r in registered if r[1].startswith("/api") and r not in described)
    assert not missing, f"describe these routes in searchd/openapi.py: {missing}"
    stale = sorted(d for d in described if d not in registered)
    assert not stale, f"searchd/openapi.py describes routes that do not exist: {stale}"


def test_every_route_is_in_docs_api_md(app):
    text = API_DOC.read_text()
    missing = sorted(f"{m} {p}" for m, p in routes(app) if f"`{m} {p}`" not in text)
    assert not missing, f"document these routes in docs/api.md: {missing}"
