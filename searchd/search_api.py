"""GET/POST /api/search and GET /api/facets.

A query is the CLI's language (indexer/query.py) plus like=ID, minus=TEXT and an uploaded image; the
filters become a set of allowed ids (SQL) that the vector search is restricted to, so they are exact.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.datastructures import MultiDict

from indexer.catalog import filters
from indexer.query import QueryError, combine
from searchd.budgets import upload_slot
from searchd.following import CATCH_UP_INTERVAL_S
from searchd.json_provider import json_body
from searchd.params import SearchParams, from_json, parse_search
from searchd.results import result

log = logging.getLogger(__name__)

bp = Blueprint("search", __name__)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _state():
    return current_app.extensions["photoseek"]


@bp.get("/api/search")
def search_get():
    return _answer(parse_search(request.args))


@bp.post("/api/search")
def search_post():
    if request.mimetype not in FORM_TYPES:  # JSON, whatever the Content-Type says
        return _answer(parse_search(from_json(json_body())))
    values = MultiDict(request.args)
    values.update(request.form)
    upload = request.files.get("image")
    if upload is None and request.files:
        raise QueryError(f"send the photo in the form field 'image', not {next(iter(request.files))!r}")
    image = None
    if upload is not None and upload.filename is not None:
        data = upload.read()
        name = upload.filename or "upload"
        if not data:
            raise QueryError(f"the uploaded image {name} is empty (0 bytes)")
        image = (data, name)
    return _answer(parse_search(values, image))


def _answer(params: SearchParams):
    state = _state()
    metrics = state.metrics
    started = time.perf_counter()
    try:
        rows = _run(state.library, params)
    except Exception:
        metrics.query_errors.labels(params.kind).inc()
        raise
    elapsed = time.perf_counter() - started
    metrics.query_seconds.labels(params.kind).observe(elapsed)
    metrics.queries.labels(params.kind).inc()
    more = len(rows) == params.limit
    return jsonify(
        results=rows,
        offset=params.offset,
        next_offset=params.offset + params.limit if more else None,
        query_ms=round(elapsed * 1000, 2),
    )


def _run(library, params: SearchParams) -> list[dict]:
    if params.browsing:
        library.catch_up(CATCH_UP_INTERVAL_S)  # browsing reads the catalog; only the index catches up
        rows = filters.newest(library.catalog, params.filters, params.limit, params.offset)
        return [result(r, None) for r in rows]
    searcher = library.searcher(CATCH_UP_INTERVAL_S)
    allowed = filters.allowed_ids(library.catalog, params.filters)
    if allowed is not None and len(allowed) == 0:
        return []
    # params.parts are texts and ids only (parse_search makes no "image" part: that would be a path on
    # the server's disk); an uploaded image is one more part, given as bytes.
    vecs = [searcher.part_vector(p) for p in params.parts]
    weights = [p.weight for p in params.parts]
    if params.image is not None:
        data, name = params.image
        with upload_slot(data, name):  # pixel budget and decoding slots (searchd/budgets.py)
            vecs.append(searcher.image_vector(data, name))
        weights.append(params.image_weight)
    q = combine(vecs, weights)
    hits = searcher.search_vector(q, params.limit, params.offset, allowed, params.min_score)
    return [result(h, h.score) for h in hits]


@bp.get("/api/facets")
def facets():
    library = _state().library
    return jsonify(filters.facets(library.catalog))
