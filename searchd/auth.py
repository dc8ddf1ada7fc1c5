"""Bearer-token authentication: required when a token is configured (and to bind beyond loopback).

Every /api route (and /metrics) needs "Authorization: Bearer TOKEN" or the cookie that POST
/api/login sets; the page and /healthz stay open so that a browser can load the page and ask.
"""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Flask, current_app, jsonify, request

from indexer.query import QueryError
from indexer.settings import Settings
from searchd.errors import error_response

COOKIE = "photoseek_token"
ENV = "PHOTOSEEK_AUTH_TOKEN"
OPEN_PATHS = {"/api/login", "/api/logout"}
COOKIE_MAX_AGE_S = 30 * 24 * 3600

bp = Blueprint("auth", __name__)


def configured_token(settings: Settings) -> str:
    return settings.auth_token or os.environ.get(ENV, "")


def _matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())  # constant time: no timing oracle


def _presented() -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(COOKIE, "")


def init_app(app: Flask, token: str) -> None:
    app.config["PHOTOSEEK_TOKEN"] = token
    app.register_blueprint(bp)
    if not token:
        return

    @app.before_request
    def require_token():
        path = request.path
        guarded = (
            path.startswith("/api/") or path == "/api" or path == "/metrics"
        ) and path not in OPEN_PATHS
        if guarded and not _matches(_presented(), token):
            return error_response(
                401,
                "this photoseek server needs its access token: send 'Authorization: Bearer TOKEN' "
                "or log in with POST /api/login",
                {"WWW-Authenticate": 'Bearer realm="photoseek"'},
            )
        return None


@bp.post("/api/login")
def login():
    """Exchange the token for an HttpOnly cookie, so the page's <img> requests carry it."""
    token = current_app.config["PHOTOSEEK_TOKEN"]
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict) or not isinstance(doc.get("token"), str):
        raise QueryError('send the token as JSON: {"token": "..."}')
    if not token:
        return jsonify(ok=True, auth=False)
    if not _matches(doc["token"], token):
        return error_response(401, "wrong token", {"WWW-Authenticate": 'Bearer realm="photoseek"'})
    response = jsonify(ok=True, auth=True)
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Strict", secure=request.is_secure
    )
    return response


@bp.post("/api/logout")
def logout():
    response = jsonify(ok=True)
    response.delete_cookie(COOKIE, httponly=True, samesite="Strict")
    return response
