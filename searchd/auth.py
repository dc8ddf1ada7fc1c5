"""Who may use the API when a token is configured: a bearer token, or a session opened with it.

Every /api route (but login, logout and the API description) and /metrics need "Authorization:
Bearer TOKEN" or the session cookie that POST /api/login sets (searchd/sessions.py: a random id,
never the token). The page and /healthz stay open, so that a browser can load the page and ask for
the token, and a monitor can ask whether the server lives. Wrong tokens are slowed down per client
(searchd/backoff.py); a weak token is refused at start-up (searchd/tokens.py). docs/security.md has
the threat model.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, jsonify, request

from indexer.errors import BadInput
from indexer.settings import Settings
from searchd.backoff import Backoff
from searchd.errors import error_response
from searchd.json_provider import json_body
from searchd.sessions import LIFETIME_S, SessionStore
from searchd.tokens import check_strength

COOKIE = "photoseek_session"
ENV = "PHOTOSEEK_AUTH_TOKEN"
OPEN_PATHS = {"/api/login", "/api/logout", "/api/openapi.json"}  # the description is no secret
EXTENSION = "photoseek.auth"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="photoseek"'}

bp = Blueprint("auth", __name__)


@dataclass
class Auth:
    token: str  # "" when the server needs none
    sessions: SessionStore
    backoff: Backoff


def configured_token(settings: Settings) -> str:
    return settings.auth_token or os.environ.get(ENV, "")


def _matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(errors="replace"), token.encode())  # constant time


def _bearer() -> str | None:
    """The token of an 'Authorization: Bearer ...' header, if the request has one."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _client() -> str:
    return request.remote_addr or "unknown"  # the proxy's client when trusted (searchd/proxies.py)


def _auth() -> Auth:
    return current_app.extensions[EXTENSION]


def _too_soon(wait_s: float):
    seconds = max(1, int(wait_s + 0.999))
    return error_response(
        429,
        f"too many wrong tokens from this address: try again in {seconds} s",
        {"Retry-After": str(seconds)},
    )


def _checked(auth: Auth, given: str):
    """None when `given` is the token; else the 401 (or 429 while this client must wait)."""
    client = _client()
    wait = auth.backoff.wait_s(client)
    if wait > 0:
        return _too_soon(wait)
    if _matches(given, auth.token):
        auth.backoff.succeeded(client)
        return None
    auth.backoff.failed(client)
    return error_response(401, "wrong token", CHALLENGE)


def guarded(path: str) -> bool:
    return (path.startswith("/api/") or path == "/api" or path == "/metrics") and path not in OPEN_PATHS


def init_app(app: Flask, token: str) -> None:
    if token:
        check_strength(token)
    settings = app.extensions["photoseek"].settings
    sessions = SessionStore(token, settings.layout.sessions if token else None)
    app.extensions[EXTENSION] = auth = Auth(token, sessions, Backoff())
    app.register_blueprint(bp)
    if not token:
        return

    @app.before_request
    def require_token():
        if not guarded(request.path):
            return None
        given = _bearer()
        if given is not None:
            return _checked(auth, given)
        if auth.sessions.valid(request.cookies.get(COOKIE, "")):
            return None
        return error_response(
            401,
            "this photoseek server needs its access token: send 'Authorization: Bearer TOKEN' "
            "or log in with POST /api/login",
            CHALLENGE,
        )


@bp.post("/api/login")
def login():
    """Open a session for the token: an HttpOnly cookie, so that the page's <img> requests carry it."""
    auth = _auth()
    doc = json_body()
    if not isinstance(doc, dict) or not isinstance(doc.get("token"), str):
        raise BadInput('send the token as JSON: {"token": "..."}')
    if not auth.token:
        return jsonify(ok=True, auth=False)
    refused = _checked(auth, doc["token"].strip())
    if refused is not None:
        return refused
    response = jsonify(ok=True, auth=True)
    response.set_cookie(
        COOKIE,
        auth.sessions.open(),
        max_age=int(LIFETIME_S),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,  # https, directly or through a trusted proxy
        path="/",
    )
    return response


@bp.post("/api/logout")
def logout():
    """End the session on the server (the cookie's id stops working) and forget the cookie."""
    auth = _auth()
    session_id = request.cookies.get(COOKIE, "")
    ended = bool(session_id) and auth.sessions.end(session_id)
    response = jsonify(ok=True, ended=ended)
    response.delete_cookie(COOKIE, httponly=True, samesite="Strict", secure=request.is_secure, path="/")
    return response
