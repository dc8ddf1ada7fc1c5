"""The OpenAPI 3.1 description of the HTTP API, written by hand (docs/api.md is the prose version).

It must be exact: schemathesis (tests/test_schemathesis.py) sends what it describes and checks that
valid requests are answered, invalid ones refused with a documented status, and every answer has the
documented status, type and shape. So bounds come from the code that enforces them (searchd.params,
searchd.budgets), and what every route shares is added by `spec()` from the app as configured: the
400 of a foreign Host (searchd/hosts.py), the 403 of a cross-site request and the X-Photoseek header
that every POST needs (searchd/origins.py), the 413 of a body over its limit (searchd/budgets.py),
and, with a token, the 401 and 429 and the security requirement (searchd/auth.py).

Other features describe their routes with `add_paths(app, {...})` from their init_app; a test checks
that every /api route registered in the app appears here.
"""

from __future__ import annotations

import copy

from flask import Flask

from indexer.tags.vocabulary import MAX_TAG_LENGTH
from searchd import auth, budgets, origins
from searchd.params import DEFAULT_LIMIT, MAX_IMAGE_ID, MAX_LIMIT, MAX_OFFSET, MAX_QUERY_CHARS, MAX_WEIGHT

EXTENSION = "photoseek.openapi"
NO_NUL = "^[^\\u0000]*$"
# q: no NUL, and at most MAX_QUERY_PARTS parts separated by '|'.
Q_PATTERN = f"^[^|\\u0000]*(\\|[^|\\u0000]*){{0,{budgets.MAX_QUERY_PARTS - 1}}}$"
TYPE_PATTERN = "^(\\.?[A-Za-z0-9]{1,16})?$"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A taken-at time as EXIF records it: the local time of the camera, without a UTC offset (so not an
# RFC 3339 date-time).
LOCAL_TIME_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?$"
# Comma-separated labels of which at least two hold something besides spaces.
_PART = "[^,]*[^,\\s][^,]*"
LABELS_PATTERN = f"^(?:[^,]*,)*{_PART},(?:[^,]*,)*{_PART}(?:,[^,]*)*$"
MAX_INT_TEXT = 10**12 - 1  # searchd.params reads at most 12 digits


def _q(name: str, schema: dict, description: str, required: bool = False, where: str = "query") -> dict:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TEXT = {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL}
_Q = {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": Q_PATTERN}
_DATE = {"type": "string", "format": "date", "pattern": DATE_PATTERN}
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_IMAGE_ID}
_TAG = {"type": "string", "maxLength": MAX_TAG_LENGTH}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_INT_TEXT, "default": DEFAULT_LIMIT}
_OFFSET = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}
_MIN_SCORE = {"type": "number", "minimum": -1, "maximum": 1}
_IMAGE_WEIGHT = {"type": "number", "minimum": -MAX_WEIGHT, "maximum": MAX_WEIGHT, "default": 1}
_TYPE = {"type": "string", "pattern": TYPE_PATTERN}
_LIST = budgets.MAX_LIST_VALUES
IMAGE_ID = _q("image_id", {"type": "integer", "minimum": 1}, "The image's id", True, "path")
ERROR = {
    "description": "An error, with a sentence that says what to do",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(ref_or_schema: str | dict, description: str = "OK") -> dict:
    schema = {"$ref": ref_or_schema} if isinstance(ref_or_schema, str) else ref_or_schema
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(schema: dict) -> dict:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def _one_or_list(item: dict) -> dict:
    return {"anyOf": [item, {"type": "array", "items": item, "maxItems": _LIST}, {"type": "null"}]}


SEARCH_PARAMS = [
    _q(
        "q",
        _Q,
        "Query language of `photoseek search`: parts separated by '|', each with an optional ':WEIGHT' "
        f"(-{MAX_WEIGHT:g}..{MAX_WEIGHT:g}, at least one positive), '#ID' an indexed image",
    ),
    _q(
        "like",
        {"type": "array", "items": _ID, "maxItems": _LIST},
        "More like this indexed image (repeatable)",
    ),
    _q("minus", {"type": "array", "items": _TEXT, "maxItems": _LIST}, "Text to steer away from (repeatable)"),
    _q("limit", _LIMIT, f"Page size; values above {MAX_LIMIT} are capped"),
    _q("offset", _OFFSET, "Results to skip"),
    _q("folder", _TEXT, "Only photos under this absolute folder (subfolders included)"),
    _q("date_from", _DATE, "Taken on or after (EXIF date, else file date)"),
    _q("date_to", _DATE, "Taken on or before (before date_from: nothing matches)"),
    _q("camera", _TEXT, "Exact camera name as listed by /api/facets"),
    _q("type", _TYPE, "File type: jpeg, png, heif, ..."),
    _q("tag", {"type": "array", "items": _TAG, "maxItems": _LIST}, "Accepted tag (repeatable: all required)"),
    _q(
        "generated",
        {"type": "string", "enum": ["1", "0", "true", "false"]},
        "Only generated (1) or camera (0)",
    ),
    _q("min_score", _MIN_SCORE, "Drop results scoring below"),
    _q("image_weight", _IMAGE_WEIGHT, "Weight of an uploaded image (POST)"),
]
# The same fields in a JSON body (searchd.params.JSON_FIELDS): typed, lists for the repeatable ones.
SEARCH_JSON = {
    "type": "object",
    "additionalProperties": False,
    "maxProperties": budgets.MAX_JSON_KEYS,
    "properties": {
        "q": _nullable(_Q),
        "like": _one_or_list(_ID),
        "minus": _one_or_list(_TEXT),
        "limit": _nullable(_LIMIT),
        "offset": _nullable(_OFFSET),
        "folder": _nullable(_TEXT),
        "date_from": _nullable(_DATE),
        "date_to": _nullable(_DATE),
        "camera": _nullable(_TEXT),
        "type": _nullable(_TYPE),
        "tag": _one_or_list(_TAG),
        "generated": {"type": ["boolean", "null"]},
        "min_score": _nullable(_MIN_SCORE),
        "image_weight": _nullable(_IMAGE_WEIGHT),
    },
}
# A form carries text: the text fields take whatever is written in them (an object arrives as its
# JSON text), so only their length and the NUL are constrained; numbers, dates and ids are checked.
_FORM_TEXT = {"maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL}
_FORM_TEXT_FIELDS = {
    "q": {"maxLength": MAX_QUERY_CHARS, "pattern": Q_PATTERN},
    "minus": {"items": _FORM_TEXT, "maxItems": _LIST},
    "folder": _FORM_TEXT,
    "camera": _FORM_TEXT,
    "tag": {"items": {"maxLength": MAX_TAG_LENGTH}, "maxItems": _LIST},
}
SEARCH_FORM = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The example photo"},
        **{p["name"]: p["schema"] for p in SEARCH_PARAMS},
        **_FORM_TEXT_FIELDS,
    },
}
UPLOAD_ENCODING = {
    "image": {"contentType": "image/png, image/jpeg, image/webp, image/gif, image/heic, image/*"}
}

RESULT_PROPS = {
    "id": _INT,
    "score": {"type": ["number", "null"]},
    "path": _STR,
    "name": _STR,
    "folder": _STR,
    "width": {"type": ["integer", "null"]},
    "height": {"type": ["integer", "null"]},
    "taken_at": {
        "type": ["string", "null"],
        "pattern": LOCAL_TIME_PATTERN,
        "description": "Local time, no offset",
    },
    "camera": {"type": ["string", "null"]},
    "format": {"type": ["string", "null"]},
    "caption": {"type": ["string", "null"]},
    "generated": {"type": "boolean"},
    "thumb": _STR,
    "file": _STR,
}
_SEARCH_STATUSES = {"404": ERROR, "409": ERROR, "503": ERROR}  # an unknown #ID, another model, no model

BASE: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "photoseek searchd",
        "version": "1",
        "description": "Semantic photo search. With a token configured, /api routes need "
        "'Authorization: Bearer TOKEN' or the session cookie set by POST /api/login. Every POST needs "
        "'X-Photoseek: 1'. docs/security.md has the threat model.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": auth.COOKIE},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
            "Result": {"type": "object", "required": list(RESULT_PROPS), "properties": RESULT_PROPS},
            "SearchResponse": {
                "type": "object",
                "required": ["results", "offset", "next_offset", "query_ms"],
                "properties": {
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
                    "offset": _INT,
                    "next_offset": {"type": ["integer", "null"]},
                    "query_ms": _NUM,
                },
            },
            "Image": {
                "type": "object",
                "properties": {
                    **RESULT_PROPS,
                    "size": _INT,
                    "mtime": _NUM,
                    "root": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["ok", "failed"]},
                    "error": {"type": ["string", "null"]},
                    "note": {"type": ["string", "null"]},
                    "content_hash": {"type": ["string", "null"]},
                    "tags": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": _STR,
                                "state": _STR,
                                "score": {"type": ["number", "null"]},
                            },
                        },
                    },
                },
            },
            "Facets": {
                "type": "object",
                "required": ["folders", "cameras", "types", "tags", "date_min", "date_max", "count"],
                "properties": {
                    "folders": {"type": "array", "items": _STR},
                    "cameras": {"type": "array", "items": _STR},
                    "types": {"type": "array", "items": _STR},
                    "tags": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": _STR, "count": _INT}},
                    },
                    "date_min": {"type": ["string", "null"]},
                    "date_max": {"type": ["string", "null"]},
                    "count": _INT,
                },
            },
        },
    },
    "paths": {
        "/api/search": {
            "get": {
                "summary": "Search by text, by indexed image, or browse the newest photos (no query)",
                "parameters": SEARCH_PARAMS,
                "responses": {"200": _json("#/components/schemas/SearchResponse"), **_SEARCH_STATUSES},
            },
            "post": {
                "summary": "Search with an uploaded image (multipart field 'image') or a JSON body",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": SEARCH_FORM, "encoding": UPLOAD_ENCODING},
                        "application/json": {"schema": SEARCH_JSON},
                    },
                },
                "responses": {"200": _json("#/components/schemas/SearchResponse"), **_SEARCH_STATUSES},
            },
        },
        "/api/facets": {
            "get": {
                "summary": "Values the filters can take: folders, cameras, types, accepted tags, date range",
                "responses": {"200": _json("#/components/schemas/Facets")},
            }
        },
        "/api/images/{image_id}": {
            "get": {
                "summary": "One image's metadata and tags",
                "parameters": [IMAGE_ID],
                "responses": {"200": _json("#/components/schemas/Image"), "404": ERROR},
            }
        },
        "/api/images/{image_id}/thumb": {
            "get": {
                "summary": "JPEG thumbnail (oriented; ETag = content hash; Cache-Control max-age=86400)",
                "parameters": [IMAGE_ID],
                "responses": {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "304": {"description": "Not modified (If-None-Match)"},
                    "403": ERROR,
                    "404": ERROR,
                },
            }
        },
        "/api/images/{image_id}/file": {
            "get": {
                "summary": "The original file (only from inside the library's folders)",
                "parameters": [IMAGE_ID],
                "responses": {
                    "200": {"description": "The file, with its own media type", "content": {"*/*": {}}},
                    "206": {"description": "Part of the file (Range)", "content": {"*/*": {}}},
                    "304": {"description": "Not modified (If-Modified-Since)"},
                    "403": ERROR,
                    "404": ERROR,
                    "416": {"description": "Range not satisfiable"},
                },
            }
        },
        "/api/login": {
            "post": {
                "summary": "Open a session with the token: an HttpOnly session cookie (never the token)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "required": ["token"], "properties": {"token": _STR}}
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["ok", "auth"],
                            "properties": {"ok": {"const": True}, "auth": {"type": "boolean"}},
                        },
                        "Logged in (auth false: this server needs no token)",
                    ),
                    "401": ERROR,
                    "429": ERROR,
                },
            }
        },
        "/api/logout": {
            "post": {
                "summary": "End the session on the server and forget its cookie",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["ok", "ended"],
                            "properties": {"ok": {"const": True}, "ended": {"type": "boolean"}},
                        },
                        "Logged out (ended: there was a session to end)",
                    )
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness, image count, change sequence and model (no token needed)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status", "images", "seq", "model"],
                            "properties": {
                                "status": {"const": "ok"},
                                "images": _INT,
                                "seq": _INT,
                                "model": {"type": ["string", "null"]},
                            },
                        }
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}},
            }
        },
    },
}


def add_paths(app: Flask, paths: dict) -> None:
    """Describe more routes (another feature's init_app calls this)."""
    app.extensions.setdefault(EXTENSION, {}).update(paths)


def spec(app: Flask) -> dict:
    doc = copy.deepcopy(BASE)
    doc["paths"].update(copy.deepcopy(app.extensions.get(EXTENSION, {})))
    gate = app.extensions.get(auth.EXTENSION)
    token = bool(gate is not None and gate.token)
    required = [{"bearer": []}, {"cookie": []}]
    doc["security"] = required if token else [{}]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            _shared(path, method, op, token, required)
    return doc


def _shared(path: str, method: str, op: dict, token: bool, required: list) -> None:
    """What every route of this app answers besides its own statuses (see the module's docstring)."""
    responses = op.setdefault("responses", {})
    responses.setdefault("400", ERROR)  # a Host this server does not answer to, at least
    if origins.guarded(path):
        responses.setdefault("403", ERROR)
    if token and auth.guarded(path):
        responses.setdefault("401", ERROR)
        responses.setdefault("429", ERROR)
        op["security"] = required
    elif token:
        op["security"] = [{}]  # open even with a token: the login itself, /healthz
    if method.upper() not in origins.SAFE_METHODS:
        responses.setdefault("413", ERROR)
        header = {
            "name": origins.HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string", "enum": [origins.HEADER_VALUE]},
            "description": "Proves the request is not a form or another site's page (docs/security.md)",
        }
        params = op.setdefault("parameters", [])
        if not any(p.get("name") == origins.HEADER for p in params):
            params.append(header)
