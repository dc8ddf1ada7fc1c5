"""/api/generate: VQGAN+CLIP jobs over HTTP, run by generation.jobs.JobRunner.

    POST /api/generate                JSON {"prompt": "a red circle:1|blue:-0.5", "size": "256x256",
                                      "steps": 300, "seed": 7, "cutouts": 32, "lr": 0.1, "cut_pow": 1,
                                      "init_weight": 0, "augments": "Af,Pe,Ji,Sh,Er", "preview_every": 15,
                                      "init_image_id": 42}, or the same fields as multipart/form-data
                                      with an "init_image" file                     -> 202 {"id", "seed"}
    GET  /api/generate                a page of jobs, newest first (?limit=20&before=ID)
                                      -> {"jobs": [...], "next_before": ID | null, "counts": {...}}
    GET  /api/generate/about          which VQGAN is in use (and whether it is the toy one), the
                                      bounds, defaults and augmentation codes
    GET  /api/generate/<id>           one job: status, progress 0..1, result_path, error
    GET  /api/generate/<id>/preview   the newest preview (or the finished image) as image/png
    POST /api/generate/<id>/cancel    cancel a queued or running job                   -> the job

Errors are JSON {"error": "..."}: 400 a bad request (with a sentence naming the parameter), 404 an
unknown job or no preview yet, 409 cancelling a finished job, 413 an upload over max_upload_mb, 429
too many queued jobs. The runner lives in app.extensions["photoseek.jobs"]; init_app puts it there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

log = logging.getLogger(__name__)

EXTENSION_KEY = "photoseek.jobs"
DEFAULT_PAGE = 20  # jobs per page of GET /api/generate when no limit is given
MAX_LIMIT_ARG = 1_000_000  # a larger ?limit= is a mistake (400); up to it, limits above MAX_PAGE are capped
MAX_FORM_FIELDS = 24  # a generation form has 12 fields; more is not a form of ours

bp = Blueprint("generate_api", __name__, url_prefix="/api/generate")


class UnsupportedType(ValueError):
    """A body that is neither JSON nor a multipart form (HTTP 415)."""


def init_app(
    app: Flask,
    settings,
    encoder_provider: Callable[[], Any],
    vqgan_spec: str | None = None,
    on_result: Callable[[Path], None] | None = None,
    catalog=None,
    models=None,
):
    """Create the job runner (catalog of settings.data_dir, PNGs into settings.layout.generated), start
    its worker and register the blueprint. `encoder_provider()` returns the loaded CLIP encoder; it is
    called from the worker on each job, so searchd's lazily loaded encoder is shared, not duplicated.
    `vqgan_spec` is "CONFIG.yaml,MODEL.ckpt" (default: the `vqgan` setting; empty, the tiny toy-world
    VQGAN); `on_result(path)` is told about each new PNG (for example to index it at once). `catalog`
    reuses searchd's open Catalog instead of opening the data dir's again; `models` is the library's
    model cache, where the VQGAN is kept and let go. Returns the runner (call its close() on shutdown).
    A `vqgan` setting naming missing files fails here, at start-up.
    """
    from generation.jobs import JobRunner
    from indexer.catalog import open_catalog
    from searchd import openapi
    from searchd.generate_openapi import api_paths

    runner = JobRunner(
        catalog if catalog is not None else open_catalog(settings.data_dir),
        settings.layout.generated,
        encoder_provider,
        vqgan_spec=vqgan_spec if vqgan_spec is not None else getattr(settings, "vqgan", ""),
        on_result=on_result,
        inputs_dir=settings.layout.generation_inputs,
        models=models,
    ).start()
    app.extensions[EXTENSION_KEY] = runner
    app.register_blueprint(bp)
    openapi.add_paths(app, api_paths())
    return runner


def _runner():
    return current_app.extensions[EXTENSION_KEY]


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status


@bp.post("")
def submit():
    from generation.inputs import InputError, remove_upload, store_upload
    from generation.jobs import QueueFull

    runner = _runner()
    try:
        prompt, params, upload = _read_request()
    except UnsupportedType as exc:
        return _error(str(exc), 415)
    except ValueError as exc:
        return _error(str(exc), 400)
    if upload is not None:
        if "init_image_id" in params:  # one start image: the picture sent wins over a valid id
            try:
                _check_image_id(params.pop("init_image_id"))
            except ValueError as exc:
                return _error(str(exc), 400)
        try:
            params["init_upload"] = store_upload(upload[0], upload[1], runner.inputs_dir)
        except InputError as exc:
            return _error(str(exc), 400)
    try:
        job_id = runner.submit(prompt, params)
    except QueueFull as exc:
        remove_upload(runner.inputs_dir, params.get("init_upload"))
        return _error(str(exc), 429)
    except (ValueError, TypeError) as exc:  # InputError and PromptError are ValueErrors
        remove_upload(runner.inputs_dir, params.get("init_upload"))
        return _error(str(exc), getattr(exc, "status", 400))  # 404: a library image that is not there
    return jsonify({"id": job_id, "seed": runner.get(job_id)["params"]["seed"]}), 202


def _read_request() -> tuple[str, dict[str, Any], tuple[bytes, str] | None]:
    """(prompt, params, (upload bytes, file name) or None) from a JSON or multipart body."""
    upload = None
    if request.mimetype == "multipart/form-data":
        if len(request.form) + len(request.files) > MAX_FORM_FIELDS:
            raise ValueError(f"too many form fields (the limit is {MAX_FORM_FIELDS})")
        unknown_files = sorted(set(request.files) - {"init_image"})
        if unknown_files or len(request.files.getlist("init_image")) > 1:
            raise ValueError("send at most one file, in the field init_image")
        repeated = sorted(k for k in request.form if len(request.form.getlist(k)) > 1)
        if repeated:
            raise ValueError(f"send each field once ({', '.join(repeated)[:100]} came more than once)")
        body: dict[str, Any] = dict(request.form.items())
        if "init_image_id" in body:
            raw = body["init_image_id"].strip()
            if not raw.isdigit() or len(raw) > 40:
                raise ValueError(f"init_image_id must be an image id, not {raw[:40]!r}")
            body["init_image_id"] = int(raw)
        file = request.files.get("init_image")
        if file is not None and file.filename:
            upload = (file.read(), file.filename)
    elif request.mimetype != "application/json" and request.content_length:
        raise UnsupportedType(
            f"send JSON or multipart/form-data, not {request.mimetype or 'an untyped body'}"
        )
    else:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the parser's recursion allows
            body = None
        if not isinstance(body, dict):
            raise ValueError('send a JSON object, e.g. {"prompt": "a red circle", "steps": 100}')
        body = dict(body)
    if "width" in body or "height" in body:
        raise ValueError('give the size as "size": "WxH" (e.g. "256x256") or [W, H]')
    if "init_upload" in body:
        raise ValueError("init_upload is set by the server; send the picture as a multipart init_image file")
    prompt = body.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError('"prompt" is required: a non-empty string such as "a red circle:1|blue:-0.5"')
    return prompt, body, upload


def _check_image_id(value: Any) -> int:
    from generation.inputs import MAX_IMAGE_ID
    from generation.options import cast_param

    image_id = cast_param("init_image_id", "int", value)
    if not 1 <= image_id <= MAX_IMAGE_ID:
        raise ValueError(f"init_image_id must be an image id (1..{MAX_IMAGE_ID}), not {image_id}")
    return image_id


@bp.get("")
def list_jobs():
    from generation.jobs import MAX_PAGE

    try:
        limit = _int_arg("limit", DEFAULT_PAGE, MAX_LIMIT_ARG)
        before = _int_arg("before", None, 2**63 - 1)
    except ValueError as exc:
        return _error(str(exc), 400)
    runner = _runner()
    jobs, next_before = runner.list_jobs(min(limit, MAX_PAGE), before)
    return jsonify({"jobs": jobs, "next_before": next_before, "counts": runner.counts()})


def _int_arg(name: str, default: int | None, maximum: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise ValueError(f"{name} must be a whole number, not {raw[:40]!r}")
    if not 1 <= int(raw) <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}")
    return int(raw)


@bp.get("/about")
def about():
    from generation import options as optimize  # the bounds: torch-free
    from generation import prompts
    from generation.augments import AUGMENT_CODES, DEFAULT_AUGMENTS
    from generation.jobs import MAX_PAGE

    runner = _runner()
    defaults = optimize.GenerationOptions()
    return jsonify(
        {
            "vqgan": runner.vqgan_info,
            "limits": {
                "min_side": optimize.MIN_SIDE, "max_side": optimize.MAX_SIDE,
                "max_pixels": optimize.MAX_PIXELS, "max_steps": optimize.MAX_STEPS,
                "max_cutouts": optimize.MAX_CUTOUTS, "max_lr": optimize.MAX_LR,
                "max_cut_pow": optimize.MAX_CUT_POW, "max_init_weight": optimize.MAX_INIT_WEIGHT,
                "max_seed": optimize.MAX_SEED, "max_prompt_chars": prompts.MAX_PROMPT_CHARS,
                "max_parts": prompts.MAX_PARTS, "max_weight": prompts.MAX_WEIGHT,
                "max_queued": runner.max_queued, "max_page": MAX_PAGE,
            },
            "defaults": {
                "size": f"{defaults.width}x{defaults.height}", "steps": defaults.steps,
                "cutouts": defaults.cutouts, "lr": defaults.lr, "cut_pow": defaults.cut_pow,
                "init_weight": defaults.init_weight, "augments": DEFAULT_AUGMENTS,
            },
            "augments": AUGMENT_CODES,
        }
    )  # fmt: skip


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
