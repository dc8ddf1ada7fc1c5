"""GET /healthz (open even with auth), GET /metrics (Prometheus text), GET /api/openapi.json."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from searchd.openapi import spec

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    library = current_app.extensions["photoseek"].library
    library.catch_up(0.5)
    return jsonify(
        status="ok",
        images=library.indexed_count(),
        seq=library.index_seq(),
        model=library.model_label(),
    )


@bp.get("/metrics")
def metrics():
    registry = current_app.extensions["photoseek"].metrics.registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@bp.get("/api/openapi.json")
def openapi():
    return jsonify(spec(current_app))
