"""Allow headers that list only methods that work (405 answers and OPTIONS).

The page's files are served by Flask's static route at the site's root (`/<path:filename>`), which
matches any path for GET. Werkzeug therefore lists GET in the Allow header of every path, POST-only
API routes included, where a GET is a 404. Here the static route counts only for files that exist:
a 405's Allow and an OPTIONS answer name exactly the methods that would be answered, and a path that
has none is a 404; a GET where only POST is answered (/api/classify) is a 405, not the static
route's 404.
"""

from __future__ import annotations

import os

from flask import Flask, current_app, request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.security import safe_join

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def methods_for(path: str) -> list[str]:
    """The methods a route (or an existing static file) answers at `path`, HEAD and OPTIONS included."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    found = set()
    for method in METHODS:
        try:
            endpoint, args = adapter.match(path, method=method)
        except (MethodNotAllowed, NotFound, RequestRedirect):
            continue
        if endpoint == "static" and not _static_file_exists(args.get("filename", "")):
            continue
        found.add(method)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found | {"OPTIONS"}) if found else []


def _static_file_exists(filename: str) -> bool:
    folder = current_app.static_folder
    path = safe_join(folder, filename) if folder else None
    return path is not None and os.path.isfile(path)


def init_app(app: Flask) -> None:
    @app.before_request
    def exact_allow():
        exc = request.routing_exception
        if isinstance(exc, MethodNotAllowed):
            methods = methods_for(request.path)
            if methods:
                exc.valid_methods = methods
            else:
                request.routing_exception = NotFound()
            return None
        rule = request.url_rule
        if exc is None and rule is not None and rule.endpoint == "static" and request.method != "OPTIONS":
            # Only the static route's catch-all matched: a 405 if a route answers other methods here.
            if not _static_file_exists((request.view_args or {}).get("filename", "")):
                methods = methods_for(request.path)
                if methods:
                    raise MethodNotAllowed(valid_methods=methods)
            return None
        if request.method == "OPTIONS" and exc is None:
            methods = methods_for(request.path)
            if not methods:
                raise NotFound()
            response = app.response_class(status=200)
            response.headers["Allow"] = ", ".join(methods)
            return response
        return None
