"""Every error is JSON {"error": "..."}: HTTP errors, the library's refusals, and bugs (500).

The library's refusals are PhotoseekErrors (indexer/errors.py); each kind carries its status, and this
module is the one place that turns them into responses.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from indexer.errors import Conflict, PhotoseekError
from searchd import budgets

log = logging.getLogger(__name__)

MESSAGES = {
    404: "nothing here: {path} is not a page or API route of photoseek",
    405: "{method} is not allowed on {path}",
}


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_app(app: Flask, max_upload_mb: float) -> None:
    def log_refusal(status: int, message: str) -> None:
        # The reason (and the file name, for uploads) goes to the log as well as to the client.
        log.info("%s %s %s: %s", status, request.method, request.path, message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc  # redirects are answers, not errors
        if isinstance(exc, RequestEntityTooLarge):
            message = budgets.too_large_message(max_upload_mb)  # which body limit: searchd/budgets.py
        elif exc.code in MESSAGES and not _custom(exc):
            message = MESSAGES[exc.code].format(method=request.method, path=request.path)
        else:
            message = exc.description or exc.name
        log_refusal(exc.code, message)
        kept = {k: v for k, v in exc.get_response().headers.items() if k in ("Allow", "WWW-Authenticate")}
        return error_response(exc.code, message, kept)

    @app.errorhandler(PhotoseekError)
    def refused(exc: PhotoseekError):
        status = exc.http_status
        if status >= 500 or isinstance(exc, Conflict):
            log.error("%s %s: %s", request.method, request.path, exc)  # the operator has something to do
        else:
            log_refusal(status, str(exc))
        return error_response(status, str(exc))

    @app.errorhandler(Exception)
    def bug(exc: Exception):
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _custom(exc: HTTPException) -> bool:
    """True when the route raised with its own description (abort(404, "image #5 ...")), not the default."""
    return exc.description != type(exc).description
