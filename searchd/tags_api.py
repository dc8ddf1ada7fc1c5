"""Tag routes: counts, an image's tags, decisions on them, and zero-shot classification.

    GET  /api/tags                   {"tags": [{"name","source","accepted","suggested"}], "threshold"}
    GET  /api/images/ID/tags         {"id", "tags": [{"name","state","score","source"}]}
    POST /api/images/ID/tags         JSON {"name", "action": "accept|reject|add|remove"} -> as GET
    POST /api/classify               multipart "image" + "labels", or JSON {"id", "labels"}
                                     -> {"labels": [{"label","probability"}]} best first

Errors are JSON {"error"} with a 4xx status, answered here so the blueprint works on any Flask app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest

from indexer.catalog.store import Catalog
from indexer.decode import DecodeError, decode_bytes
from indexer.settings import Settings
from indexer.tags.classify import classify, parse_labels
from indexer.tags.store import ACTIONS, UnknownImage, apply, tag_counts, tags_of

EXTENSION = "photoseek.tags"

bp = Blueprint("tags", __name__)


@dataclass
class TagsState:
    settings: Settings
    catalog: Catalog
    encoder: Callable[[], object]


def init_app(
    app: Flask, settings: Settings, catalog: Catalog, encoder_provider: Callable[[], object]
) -> None:
    from searchd import openapi

    app.extensions[EXTENSION] = TagsState(settings, catalog, encoder_provider)
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI_PATHS)


_STR = {"type": "string"}
_ERROR = {
    "description": "An error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_IMAGE_ID = {"name": "image_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_TAG = {
    "type": "object",
    "properties": {
        "name": _STR,
        "state": {"type": "string", "enum": ["suggested", "accepted", "rejected"]},
        "score": {"type": ["number", "null"], "description": "Calibrated score 0..1 (docs/tags.md)"},
        "source": {"type": "string", "enum": ["vocabulary", "user"]},
    },
}
_IMAGE_TAGS = {
    "description": "The image's tags: accepted, then suggested by score, then rejected",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": _TAG}},
            }
        }
    },
}
_LABELS = {
    "description": "Comma-separated labels (or a JSON list): at least two",
    "oneOf": [_STR, {"type": "array", "items": _STR}],
}
OPENAPI_PATHS = {
    "/api/tags": {
        "get": {
            "summary": "Tags in use with their accepted and suggested counts, and the suggestion threshold",
            "responses": {"200": {"description": "{tags: [{name, source, accepted, suggested}], threshold}"}},
        }
    },
    "/api/images/{image_id}/tags": {
        "get": {
            "summary": "An image's tags",
            "parameters": [_IMAGE_ID],
            "responses": {"200": _IMAGE_TAGS, "404": _ERROR},
        },
        "post": {
            "summary": "Accept or reject a suggestion, add a tag of your own, or remove one",
            "parameters": [_IMAGE_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name", "action"],
                            "properties": {"name": _STR, "action": {"type": "string", "enum": list(ACTIONS)}},
                        }
                    }
                },
            },
            "responses": {"200": _IMAGE_TAGS, "400": _ERROR, "404": _ERROR, "415": _ERROR},
        },
    },
    "/api/classify": {
        "post": {
            "summary": "Zero-shot classification of an upload or an indexed photo among the labels given",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "image": {"type": "string", "format": "binary"},
                                "labels": _LABELS,
                            },
                        }
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"id": {"type": "integer"}, "labels": _LABELS},
                        }
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "{labels: [{label, probability}]}, best first; probabilities sum to 1"
                },
                "400": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
            },
        }
    },
}


def _state() -> TagsState:
    return current_app.extensions[EXTENSION]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    current_app.logger.info("%s %s %s: %s", exc.status, request.method, request.path, exc)
    return jsonify(error=str(exc)), exc.status


def _image_tags(image_id: int) -> dict:
    try:
        rows = tags_of(_state().catalog, image_id)
    except UnknownImage as exc:
        raise ApiError(404, str(exc)) from exc
    return {"id": image_id, "tags": [t.as_dict() for t in rows]}


def _json_body() -> dict:
    try:
        body = request.get_json(force=False, silent=False)
    except BadRequest as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, 'send a JSON object, e.g. {"name": "dog", "action": "accept"}')
    return body


@bp.get("/api/tags")
def tag_list():
    state = _state()
    return jsonify(tags=tag_counts(state.catalog), threshold=state.settings.tag_threshold)


@bp.get("/api/images/<int:image_id>/tags")
def image_tags(image_id: int):
    return jsonify(_image_tags(image_id))


@bp.post("/api/images/<int:image_id>/tags")
def change_image_tag(image_id: int):
    if not request.is_json:
        raise ApiError(415, 'send JSON {"name": TAG, "action": "accept|reject|add|remove"}')
    body = _json_body()
    name, action = body.get("name"), body.get("action")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, '"name" must be the tag\'s name, a non-empty string')
    if action not in ACTIONS:
        raise ApiError(400, f'"action" must be one of {", ".join(ACTIONS)}, not {action!r}')
    try:
        apply(_state().catalog, image_id, name, action)
    except UnknownImage as exc:
        raise ApiError(404, str(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify(_image_tags(image_id))


@bp.post("/api/classify")
def classify_route():
    state = _state()
    if request.is_json:
        body = _json_body()
        labels, image_id, upload = body.get("labels"), body.get("id"), None
    else:
        labels, image_id, upload = (
            request.form.get("labels"),
            request.form.get("id"),
            request.files.get("image"),
        )
    if labels is None:
        raise ApiError(400, 'give "labels": the names to choose between, e.g. "cat,dog,human"')
    try:
        wanted = parse_labels(labels)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    encoder = state.encoder()
    if upload is not None and upload.filename:
        picture = _decode_upload(state, upload, encoder.image_size)
    elif image_id is not None:
        picture = _stored_vector(state, encoder, image_id)
    else:
        raise ApiError(400, 'send an "image" file (multipart) or the "id" of an indexed photo')
    result = classify(encoder, picture, wanted)
    return jsonify(labels=[{"label": label, "probability": round(p, 4)} for label, p in result])


def _decode_upload(state: TagsState, upload, image_size: int):
    data = upload.read()
    try:
        return decode_bytes(data, upload.filename, state.settings.max_megapixels, draft=image_size).image
    except DecodeError as exc:
        raise ApiError(400, f"cannot classify {upload.filename}: {exc}") from exc


def _stored_vector(state: TagsState, encoder, image_id):
    try:
        number = int(str(image_id).lstrip("#"))
    except ValueError as exc:
        raise ApiError(400, f'"id" must be an image id (a number), not {image_id!r}') from exc
    active = state.catalog.active_model()
    if active is None:
        raise ApiError(404, "the library has no photos yet")
    if active != encoder.identity:
        raise ApiError(409, f"the library was indexed with {active.label}, not {encoder.identity.label}")
    model_id = state.catalog.model_id(active, create=False)
    ids, vectors = state.catalog.searchable_vectors(model_id, [number])
    if len(ids) == 0:
        raise ApiError(404, f"image #{number} is not in the library (unknown, removed, or failed to index)")
    return vectors[0]
