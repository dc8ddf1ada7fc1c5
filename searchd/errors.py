"""Every error is JSON {"error": "..."}: HTTP errors, the library's refusals, and bugs (500)."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from indexer.decode import DecodeError
from indexer.pipeline import ModelMismatch
from indexer.query import QueryError

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
            message = f"the upload is larger than the limit of {max_upload_mb:g} MB (setting max_upload_mb)"
        elif exc.code in MESSAGES and not _custom(exc):
            message = MESSAGES[exc.code].format(method=request.method, path=request.path)
        else:
            message = exc.description or exc.name
        log_refusal(exc.code, message)
        kept = {k: v for k, v in exc.get_response().headers.items() if k in ("Allow", "WWW-Authenticate")}
        return error_response(exc.code, message, kept)

    @app.errorhandler(QueryError)
    @app.errorhandler(DecodeError)
    def bad_input(exc: Exception):
        log_refusal(400, str(exc))
        return error_response(400, str(exc))

    @app.errorhandler(ModelMismatch)
    def model_mismatch(exc: ModelMismatch):
        log.error("%s", exc)
        return error_response(409, str(exc))

    @app.errorhandler(Exception)
    def bug(exc: Exception):
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _custom(exc: HTTPException) -> bool:
    """True when the route raised with its own description (abort(404, "image #5 ...")), not the default."""
    return exc.description != type(exc).description
