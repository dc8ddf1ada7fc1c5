"""Tag routes: counts, an image's tags, decisions on them, and zero-shot classification.

    GET  /api/tags                   {"tags": [{"name","source","accepted","suggested"}], "threshold"}
    GET  /api/images/ID/tags         {"id", "tags": [{"name","state","score","source"}]}
    POST /api/images/ID/tags         JSON {"name", "action": "accept|reject|add|remove"} -> as GET
    POST /api/classify               multipart "image" + "labels", or JSON {"id", "labels"}
                                     -> {"labels": [{"label","probability"}]} best first

Errors are PhotoseekErrors (indexer/errors.py), answered as JSON {"error"} by searchd/errors.py.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from indexer.decode import decode_bytes
from indexer.errors import BadInput, DecodeError
from indexer.library import Library
from indexer.tags.classify import classify, parse_labels
from indexer.tags.store import ACTIONS, apply, tag_counts, tags_of
from searchd.budgets import MAX_LABEL_CHARS, MAX_LABELS, check_count, upload_slot, uploads
from searchd.json_provider import json_body
from searchd.openapi import LABELS_PATTERN, UPLOAD_ENCODING
from searchd.params import MAX_IMAGE_ID

EXTENSION = "photoseek.tags"

bp = Blueprint("tags", __name__)


def init_app(app: Flask, library: Library) -> None:
    from searchd import openapi

    app.extensions[EXTENSION] = library
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
                "required": ["id", "tags"],
                "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": _TAG}},
            }
        }
    },
}
_TAG_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_CHARS, "pattern": "\\S"}
_LABELS_TEXT = {
    "type": "string",
    "maxLength": MAX_LABELS * (MAX_LABEL_CHARS + 1),
    "pattern": LABELS_PATTERN,
    "description": f"Comma-separated, at least two, at most {MAX_LABELS} of at most {MAX_LABEL_CHARS} "
    "characters; blank ones are skipped, and labels equal once trimmed and lower-cased count once",
}
_LABELS = {
    "anyOf": [
        _LABELS_TEXT,
        {"type": "array", "items": _TAG_NAME, "minItems": 2, "maxItems": MAX_LABELS},
    ]
}
_CLASSIFY_ID = {"type": "integer", "minimum": 1, "maximum": MAX_IMAGE_ID, "description": "An indexed photo"}
OPENAPI_PATHS = {
    "/api/tags": {
        "get": {
            "summary": "Tags in use with their accepted and suggested counts, and the suggestion threshold",
            "responses": {
                "200": {
                    "description": "{tags: [{name, source, accepted, suggested}], threshold}",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["tags", "threshold"],
                                "properties": {
                                    "tags": {"type": "array", "items": {"type": "object"}},
                                    "threshold": {"type": "number"},
                                },
                            }
                        }
                    },
                }
            },
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
                            "properties": {
                                "name": _TAG_NAME,
                                "action": {"type": "string", "enum": list(ACTIONS)},
                            },
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
                            "required": ["labels"],
                            "properties": {
                                "image": {"type": "string", "format": "binary"},
                                "id": _CLASSIFY_ID,
                                "labels": _LABELS_TEXT,
                            },
                            "anyOf": [{"required": ["image"]}, {"required": ["id"]}],
                        },
                        "encoding": UPLOAD_ENCODING,
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["id", "labels"],
                            "properties": {"id": _CLASSIFY_ID, "labels": _LABELS},
                        }
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "Labels best first; probabilities sum to 1",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["labels"],
                                "properties": {
                                    "labels": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["label", "probability"],
                                            "properties": {
                                                "label": _STR,
                                                "probability": {"type": "number", "minimum": 0, "maximum": 1},
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
                "400": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
                "503": _ERROR,
            },
        }
    },
}


def _library() -> Library:
    return current_app.extensions[EXTENSION]


def _image_tags(image_id: int) -> dict:
    rows = tags_of(_library().catalog, image_id)
    return {"id": image_id, "tags": [t.as_dict() for t in rows]}


def _json_body() -> dict:
    body = json_body()  # searchd/json_provider.py: a 400 that says what is wrong with it
    if not isinstance(body, dict):
        raise BadInput('send a JSON object, e.g. {"name": "dog", "action": "accept"}')
    return body


@bp.get("/api/tags")
def tag_list():
    library = _library()
    return jsonify(tags=tag_counts(library.catalog), threshold=library.settings.tag_threshold)


@bp.get("/api/images/<int:image_id>/tags")
def image_tags(image_id: int):
    return jsonify(_image_tags(image_id))


@bp.post("/api/images/<int:image_id>/tags")
def change_image_tag(image_id: int):
    if not request.is_json:
        raise UnsupportedMediaType('send JSON {"name": TAG, "action": "accept|reject|add|remove"}')
    body = _json_body()
    name, action = body.get("name"), body.get("action")
    if not isinstance(name, str) or not name.strip():
        raise BadInput('"name" must be the tag\'s name, a non-empty string')
    if len(name) > MAX_LABEL_CHARS:
        raise BadInput(f'"name" is longer than {MAX_LABEL_CHARS} characters')
    if action not in ACTIONS:
        raise BadInput(f'"action" must be one of {", ".join(ACTIONS)}, not {action!r}')
    apply(_library().catalog, image_id, name, action)
    return jsonify(_image_tags(image_id))


@bp.post("/api/classify")
def classify_route():
    library = _library()
    if request.is_json:
        body = _json_body()
        labels, image_id, upload = body.get("labels"), body.get("id"), None
        if isinstance(image_id, float) and image_id.is_integer():
            image_id = int(image_id)  # 5.0 is a whole number to JSON
        if image_id is not None and (isinstance(image_id, bool) or not isinstance(image_id, int)):
            raise BadInput(f'"id" must be an image id (a positive whole number), not {str(image_id)[:40]!r}')
    else:
        labels, image_id, upload = (
            request.form.get("labels"),
            request.form.get("id"),
            request.files.get("image"),
        )
    if labels is None:
        raise BadInput('give "labels": the names to choose between, e.g. "cat,dog,human"')
    wanted = parse_labels(_capped(labels))
    encoder = library.encoder()
    if upload is not None and upload.filename:
        data = upload.read()
        with upload_slot(data, upload.filename):  # pixel budget and decoding slots (searchd/budgets.py)
            picture = _decode_upload(data, upload.filename, encoder.image_size)
            result = classify(encoder, picture, wanted)
    elif image_id is not None:
        library.check_model(encoder.identity)
        result = classify(encoder, library.stored_vector(_image_id(image_id)), wanted)
    else:
        raise BadInput('send an "image" file (multipart) or the "id" of an indexed photo')
    return jsonify(labels=[{"label": label, "probability": round(p, 4)} for label, p in result])


def _capped(labels) -> str | list:
    """The labels, counted and measured before any is normalised or encoded (searchd/budgets.py)."""
    items = labels.split(",") if isinstance(labels, str) else labels
    if not isinstance(items, list):
        raise BadInput('"labels" must be a comma-separated string or a list of strings')
    check_count("labels", len(items), MAX_LABELS)
    for item in items:
        if isinstance(item, str) and len(item) > MAX_LABEL_CHARS:
            raise BadInput(f"the label {item[:30]!r}... is longer than {MAX_LABEL_CHARS} characters")
        if isinstance(labels, list) and isinstance(item, str) and not item.strip():
            raise BadInput("a label in the list is empty; give each label some text")
    return labels


def _decode_upload(data: bytes, name: str, image_size: int):
    try:
        return decode_bytes(data, name, uploads().max_megapixels, draft=image_size).image
    except DecodeError as exc:
        raise BadInput(f"cannot classify {name}: {exc}") from exc


def _image_id(value) -> int:
    raw = str(value).strip().lstrip("#")
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,19}", raw) or not 0 < int(raw) <= MAX_IMAGE_ID:
        raise BadInput(f'"id" must be an image id (a positive whole number), not {str(value)[:40]!r}')
    return int(raw)
