"""No other web page may read this server or act through it (cross-site request checks).

A page on another origin (another site, or another port of this very host) can make the browser send
requests here: forms that submit themselves, `fetch(..., {mode: "no-cors"})`, <img> tags. It cannot
read the answers, but the requests alone could cancel a job or make the server decode a huge upload,
and the login cookie travels with same-site ones. So, for the API, /metrics and /healthz:

- `Sec-Fetch-Site`, sent by every current browser, must be `same-origin` (or `none`: typed, bookmarked);
- an `Origin` header, when there is one, must be this server's own origin (scheme://host:port);
- every request that is not GET/HEAD/OPTIONS must carry `X-Photoseek: 1`. A form cannot set a header,
  and a page on another origin can send one only after a CORS preflight, which this server never
  grants; the page and scripts send it (web/api.js), so this holds even in a browser without the two
  headers above.
"""

from __future__ import annotations

import logging

from flask import Flask, request

from searchd.errors import error_response

log = logging.getLogger(__name__)

HEADER = "X-Photoseek"
HEADER_VALUE = "1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_VALUES = frozenset({"same-origin", "none"})  # "same-site" includes other ports: refused


def guarded(path: str) -> bool:
    """The API and the status routes; the page and its files stay loadable from links anywhere."""
    return path == "/api" or path.startswith("/api/") or path in ("/metrics", "/healthz")


def own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def refusal() -> str | None:
    """Why this request looks cross-site (a sentence), or None when it may go on."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_SITE_VALUES:
        return f"a page on another site or port ({site}) may not use this server's API"
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != own_origin():
        hint = ""
        if origin.lower().replace("https://", "http://", 1) == own_origin():
            hint = (
                "; if a proxy serves this page over https, have it send X-Forwarded-Proto and list it "
                "in the trusted_proxies setting"
            )
        return f"requests from {origin[:100]!r} may not use this server's API (it is {own_origin()}){hint}"
    routed = request.routing_exception is None  # else a 404 or 405 follows, and changes nothing
    if routed and request.method not in SAFE_METHODS and request.headers.get(HEADER) != HEADER_VALUE:
        return (
            f"send the header '{HEADER}: {HEADER_VALUE}' with every {request.method} (the page does; "
            "a form or a page on another site cannot, which is the point)"
        )
    return None


def init_app(app: Flask) -> None:
    @app.before_request
    def same_origin_only():
        if not guarded(request.path):
            return None
        why = refusal()
        if why is None:
            return None
        log.info("403 %s %s: %s", request.method, request.path, why)  # the operator sees who tried
        return error_response(403, why)
