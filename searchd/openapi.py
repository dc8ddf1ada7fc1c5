"""The OpenAPI 3.1 description of the HTTP API, written by hand (docs/api.md is the prose version).

Other features describe their routes with `add_paths(app, {...})` from their init_app; a test checks
that every /api route registered in the app appears here.
"""

from __future__ import annotations

import copy
import re

from flask import Flask

EXTENSION = "photoseek.openapi"


def _q(name: str, schema: dict, description: str, required: bool = False, where: str = "query") -> dict:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


_STR, _INT, _NUM, _DATE = (
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "string", "format": "date"},
)
IMAGE_ID = _q("image_id", {"type": "integer", "minimum": 1}, "The image's id", True, "path")
ERROR = {
    "description": "An error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(ref: str, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


SEARCH_PARAMS = [
    _q("q", _STR, "Query language of `photoseek search`: parts separated by '|', optional ':WEIGHT', '#ID'"),
    _q("like", {"type": "array", "items": _INT}, "More like this indexed image (repeatable)"),
    _q("minus", {"type": "array", "items": _STR}, "Text to steer away from, weight -1 (repeatable)"),
    _q("limit", {"type": "integer", "minimum": 1, "default": 40}, "Page size; values above 200 are capped"),
    _q("offset", {"type": "integer", "minimum": 0, "maximum": 100000, "default": 0}, "Results to skip"),
    _q("folder", _STR, "Only photos under this absolute folder (subfolders included)"),
    _q("date_from", _DATE, "Taken on or after (EXIF date, else file date)"),
    _q("date_to", _DATE, "Taken on or before"),
    _q("camera", _STR, "Exact camera name as listed by /api/facets"),
    _q("type", _STR, "File type: jpeg, png, heif, ..."),
    _q("tag", {"type": "array", "items": _STR}, "Accepted tag (repeatable: all required)"),
    _q("generated", {"type": "string", "enum": ["1", "0"]}, "Only generated (1) or only camera (0) images"),
    _q("min_score", {"type": "number", "minimum": -1, "maximum": 1}, "Drop results scoring below"),
    _q("image_weight", _NUM, "Weight of an uploaded image (POST), default 1"),
]

RESULT_PROPS = {
    "id": _INT,
    "score": {"type": ["number", "null"]},
    "path": _STR,
    "name": _STR,
    "folder": _STR,
    "width": {"type": ["integer", "null"]},
    "height": {"type": ["integer", "null"]},
    "taken_at": {"type": ["string", "null"], "format": "date-time"},
    "camera": {"type": ["string", "null"]},
    "format": {"type": ["string", "null"]},
    "caption": {"type": ["string", "null"]},
    "generated": {"type": "boolean"},
    "thumb": _STR,
    "file": _STR,
}

BASE: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "photoseek searchd",
        "version": "1",
        "description": "Semantic photo search. With a token configured, /api routes need "
        "'Authorization: Bearer TOKEN' or the cookie set by POST /api/login.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "photoseek_token"},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
            "Result": {"type": "object", "properties": RESULT_PROPS},
            "SearchResponse": {
                "type": "object",
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
        },
    },
    "security": [{}, {"bearer": []}, {"cookie": []}],
    "paths": {
        "/api/search": {
            "get": {
                "summary": "Search by text, by indexed image, or browse the newest photos (no query)",
                "parameters": SEARCH_PARAMS,
                "responses": {
                    "200": _json("#/components/schemas/SearchResponse"),
                    "400": ERROR,
                    "401": ERROR,
                },
            },
            "post": {
                "summary": "Search with an uploaded image (multipart field 'image') or a JSON body",
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"image": {"type": "string", "format": "binary"}, "q": _STR},
                            }
                        },
                        "application/json": {"schema": {"type": "object"}},
                    }
                },
                "responses": {
                    "200": _json("#/components/schemas/SearchResponse"),
                    "400": ERROR,
                    "401": ERROR,
                    "413": ERROR,
                },
            },
        },
        "/api/facets": {
            "get": {
                "summary": "Values the filters can take: folders, cameras, types, accepted tags, date range",
                "responses": {"200": {"description": "Facets"}, "401": ERROR},
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
                    "304": {"description": "Not modified"},
                    "403": ERROR,
                    "404": ERROR,
                },
            }
        },
        "/api/images/{image_id}/file": {
            "get": {
                "summary": "The original file (only from inside the library's folders)",
                "parameters": [IMAGE_ID],
                "responses": {"200": {"description": "The file"}, "403": ERROR, "404": ERROR},
            }
        },
        "/api/login": {
            "post": {
                "summary": "Exchange the token for an HttpOnly cookie",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": {"token": _STR}}}
                    }
                },
                "responses": {"200": {"description": "Logged in"}, "400": ERROR, "401": ERROR},
            }
        },
        "/api/logout": {
            "post": {"summary": "Forget the cookie", "responses": {"200": {"description": "OK"}}}
        },
        "/api/openapi.json": {
            "get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}
        },
        "/healthz": {
            "get": {
                "summary": "Liveness, image count, change sequence and model (no auth)",
                "security": [{}],
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text"}}}
        },
    },
}


JOB_ID = _q("job_id", {"type": "integer", "minimum": 1}, "The generation job's id", True, "path")
_OK = {"200": {"description": "OK"}}

# Routes of the other features (searchd/generate_api.py, searchd/tags_api.py), for those that do not
# describe themselves with add_paths; see their modules.
FEATURE_PATHS: dict = {
    "/api/generate": {
        "post": {
            "summary": "Queue a VQGAN+CLIP generation job: JSON {prompt, size, steps, seed, ...} -> 202 {id}",
            "responses": {"202": {"description": "Queued"}, "400": ERROR},
        },
        "get": {"summary": "The newest generation jobs (?limit=50)", "responses": _OK},
    },
    "/api/generate/{job_id}": {
        "get": {"summary": "One job: status, progress, result", "parameters": [JOB_ID], "responses": _OK}
    },
    "/api/generate/{job_id}/preview": {
        "get": {
            "summary": "The newest preview PNG of a job",
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "PNG", "content": {"image/png": {}}}, "404": ERROR},
        }
    },
    "/api/generate/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a queued or running job",
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "The job"}, "404": ERROR, "409": ERROR},
        }
    },
    "/api/tags": {"get": {"summary": "Tags with their counts", "responses": _OK}},
    "/api/images/{image_id}/tags": {
        "get": {"summary": "An image's tags", "parameters": [IMAGE_ID], "responses": _OK},
        "post": {
            "summary": 'Change an image\'s tag: JSON {"name", "action": "accept|reject|add|remove"}',
            "parameters": [IMAGE_ID],
            "responses": {"200": {"description": "The image's tags"}, "400": ERROR, "404": ERROR},
        },
    },
    "/api/classify": {
        "post": {
            "summary": "Zero-shot classify an uploaded image or an indexed image's id against labels",
            "responses": {"200": {"description": "Label scores"}, "400": ERROR},
        }
    },
}


def add_paths(app: Flask, paths: dict) -> None:
    """Describe more routes (another feature's init_app calls this)."""
    app.extensions.setdefault(EXTENSION, {}).update(paths)


def spec(app: Flask) -> dict:
    doc = copy.deepcopy(BASE)
    doc["paths"].update(copy.deepcopy(app.extensions.get(EXTENSION, {})))
    # A feature's routes are described only when the app has them (each feature may be absent).
    registered = {_template(rule.rule) for rule in app.url_map.iter_rules()}
    for path, ops in FEATURE_PATHS.items():
        if path in registered and path not in doc["paths"]:  # a feature's own description wins
            doc["paths"][path] = copy.deepcopy(ops)
    return doc


def _template(rule: str) -> str:
    """/api/images/<int:image_id> -> /api/images/{image_id}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
