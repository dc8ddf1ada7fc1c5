"""/api/generate: VQGAN+CLIP jobs over HTTP, run by generation.jobs.JobRunner.

    POST /api/generate                {"prompt": "...", "size": "256x256", "steps": 300, "seed": 0,
                                       "cutouts": 32, "lr": 0.1, "preview_every": 15}  -> 202 {"id": N}
    GET  /api/generate                the newest jobs (?limit=50)                       -> {"jobs": [...]}
    GET  /api/generate/<id>           one job: status, progress 0..1, result_path, error
    GET  /api/generate/<id>/preview   the newest preview (or the finished image) as image/png
    POST /api/generate/<id>/cancel    cancel a queued or running job                   -> the job

Errors are JSON {"error": "..."}: 400 bad request, 404 unknown job or no preview yet, 409 cancelling
a finished job. The runner lives in app.extensions["photoseek.jobs"]; init_app puts it there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

EXTENSION_KEY = "photoseek.jobs"
MAX_LIST = 500

bp = Blueprint("generate_api", __name__, url_prefix="/api/generate")


def init_app(
    app: Flask,
    settings,
    encoder_provider: Callable[[], Any],
    vqgan_spec: str | None = None,
    on_result: Callable[[Path], None] | None = None,
    catalog=None,
):
    """Create the job runner (catalog of settings.data_dir, PNGs into settings.generated_dir), start its
    worker and register the blueprint. `encoder_provider()` returns the loaded CLIP encoder; it is
    called from the worker on each job, so searchd's lazily loaded encoder is shared, not duplicated.
    `vqgan_spec` is "CONFIG.yaml,MODEL.ckpt" (default: the tiny toy-world VQGAN); `on_result(path)` is
    told about each new PNG (for example to index it at once). `catalog` reuses searchd's open
    Catalog instead of opening the data dir's again. Returns the runner (call its close() on shutdown).
    """
    from generation.jobs import JobRunner
    from indexer.catalog import open_catalog

    runner = JobRunner(
        catalog if catalog is not None else open_catalog(settings.data_dir),
        settings.generated_dir,
        encoder_provider,
        vqgan_spec=vqgan_spec,
        on_result=on_result,
    ).start()
    app.extensions[EXTENSION_KEY] = runner
    app.register_blueprint(bp)
    return runner


def _runner():
    return current_app.extensions[EXTENSION_KEY]


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status


@bp.post("")
def submit():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error('send a JSON object, e.g. {"prompt": "a red circle", "steps": 100}', 400)
    prompt = body.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        return _error('"prompt" is required: a non-empty string', 400)
    try:
        job_id = _runner().submit(prompt, body)
    except (ValueError, TypeError) as exc:
        return _error(str(exc), 400)
    return jsonify({"id": job_id}), 202


@bp.get("")
def list_jobs():
    limit = request.args.get("limit", 50, type=int)
    return jsonify({"jobs": _runner().list_jobs(max(1, min(limit, MAX_LIST)))})


@bp.get("/<int:job_id>")
def get_job(job_id: int):
    from generation.jobs import UnknownJob

    try:
        return jsonify(_runner().get(job_id))
    except UnknownJob:
        return _error(f"no generation job {job_id}", 404)


@bp.get("/<int:job_id>/preview")
def preview(job_id: int):
    from generation.jobs import UnknownJob

    try:
        png = _runner().latest_preview(job_id)
    except UnknownJob:
        return _error(f"no generation job {job_id}", 404)
    if png is None:
        return _error(f"job {job_id} has no preview yet; try again after a few steps", 404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.post("/<int:job_id>/cancel")
def cancel(job_id: int):
    from generation.jobs import JobFinished, UnknownJob

    try:
        return jsonify(_runner().cancel(job_id))
    except UnknownJob:
        return _error(f"no generation job {job_id}", 404)
    except JobFinished as exc:
        return _error(str(exc), 409)
