"""The OpenAPI description of /api/generate (searchd/generate_api.py), merged by searchd/openapi.py.

Bounds come from the code that enforces them (generation.optimize, generation.prompts), so the
description cannot drift from what the server accepts.
"""

from __future__ import annotations

# A side of 8..1024 as a regular expression (the string form of `size`; generation.optimize's bounds).
SIDE = "(?:[89]|[1-9][0-9]|[1-9][0-9]{2}|10[01][0-9]|102[0-4])"
AUGMENT = "(?:Af|Pe|Ji|Sh|Er|Ro|Fl)"  # generation.cutouts.AUGMENT_CODES
# At least one character that is not a space, "|" or ":" (a prompt of only those has no text), no NUL.
PROMPT_PATTERN = "^[^\\u0000]*[^\\s|:\\u0000][^\\u0000]*$"


def api_paths() -> dict:
    from generation import options as optimize  # the bounds: torch-free
    from generation import prompts
    from generation.inputs import MAX_IMAGE_ID
    from generation.jobs import MAX_PAGE
    from searchd.generate_api import DEFAULT_PAGE, MAX_LIMIT_ARG

    error = {
        "description": "An error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    nullable_str = {"type": ["string", "null"]}
    job = {
        "type": "object",
        "required": [
            "id",
            "prompt",
            "params",
            "status",
            "progress",
            "result_path",
            "error",
            "created_at",
            "finished_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "prompt": {"type": "string"},
            "params": {"type": "object", "description": "The job's options, seed included"},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "result_path": nullable_str,
            "error": nullable_str,
            "created_at": {"type": "string"},
            "finished_at": nullable_str,
        },
    }
    job_json = {"description": "The job", "content": {"application/json": {"schema": job}}}
    fields = {
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": prompts.MAX_PROMPT_CHARS,
            "pattern": PROMPT_PATTERN,
            "description": "Parts separated by '|', each TEXT[:WEIGHT[:STOP]] (nerdyrodent's syntax) "
            "or #ID[:WEIGHT[:STOP]] for a library image as a target",
        },
        "size": {
            "oneOf": [
                {"type": "string", "pattern": f"^{SIDE}[xX]{SIDE}$"},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": optimize.MIN_SIDE, "maximum": optimize.MAX_SIDE},
                    "minItems": 2,
                    "maxItems": 2,
                },
            ],
            "description": f"WxH, each side {optimize.MIN_SIDE}..{optimize.MAX_SIDE}; the image made is "
            "rounded down to whole VQGAN tokens",
        },
        "steps": {"type": "integer", "minimum": 1, "maximum": optimize.MAX_STEPS, "default": 300},
        "seed": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": optimize.MAX_SEED,
            "description": "Default: a random seed, returned and recorded in the PNG",
        },
        "cutouts": {"type": "integer", "minimum": 1, "maximum": optimize.MAX_CUTOUTS, "default": 32},
        "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": optimize.MAX_LR, "default": 0.1},
        "cut_pow": {"type": "number", "minimum": 0, "maximum": optimize.MAX_CUT_POW, "default": 1},
        "init_weight": {
            "type": "number",
            "minimum": 0,
            "maximum": optimize.MAX_INIT_WEIGHT,
            "default": 0,
            "description": "MSE pull of the latent towards the starting (init image's) latent",
        },
        "augments": {
            "type": "string",
            "pattern": f"^(?:none|off|{AUGMENT}(?:,{AUGMENT})*)?$",
            "description": "Comma-separated codes (see /about); empty, none or off: none",
        },
        "preview_every": {"type": "integer", "minimum": 0, "maximum": optimize.MAX_STEPS},
        "init_image_id": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_IMAGE_ID,
            "description": "A library image to start from (404 when there is none)",
        },
    }
    # A form's values are text: `size` only in its string form; the others as in JSON (numbers as text).
    form_fields = {k: v for k, v in fields.items() if k not in ("size", "seed")}
    form_fields["size"] = fields["size"]["oneOf"][0]
    form_fields["seed"] = {k: v for k, v in fields["seed"].items() if k != "type"} | {"type": "integer"}
    form_fields["init_image"] = {
        "type": "string",
        "format": "binary",
        "description": "An image to start from (it wins over an init_image_id sent with it)",
    }
    int_query = lambda name, maximum, description: {  # noqa: E731
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "The job's id",
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "/api/generate": {
            "post": {
                "summary": "Queue a VQGAN+CLIP generation job",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["prompt"],
                                "additionalProperties": False,
                                "properties": fields,
                            }
                        },
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["prompt"],
                                "additionalProperties": False,
                                "properties": form_fields,
                            }
                        },
                    },
                },
                "responses": {
                    "202": {
                        "description": "Queued",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id", "seed"],
                                    "properties": {"id": {"type": "integer"}, "seed": {"type": "integer"}},
                                }
                            }
                        },
                    },
                    "400": error,
                    "401": error,
                    "404": error,
                    "413": error,
                    "415": error,
                    "429": error,
                },
            },
            "get": {
                "summary": "A page of generation jobs, newest first",
                "parameters": [
                    int_query(
                        "limit",
                        MAX_LIMIT_ARG,
                        f"Jobs per page (default {DEFAULT_PAGE}; above {MAX_PAGE} capped)",
                    ),
                    int_query(
                        "before", 2**63 - 1, "Only jobs with a smaller id (the previous page's next_before)"
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "Jobs",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["jobs", "next_before", "counts"],
                                    "properties": {
                                        "jobs": {"type": "array", "items": job},
                                        "next_before": {"type": ["integer", "null"]},
                                        "counts": {
                                            "type": "object",
                                            "additionalProperties": {"type": "integer"},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "400": error,
                    "401": error,
                },
            },
        },
        "/api/generate/about": {
            "get": {
                "summary": "The VQGAN in use (the toy one is for demos and tests), bounds, defaults",
                "responses": {
                    "200": {
                        "description": "About generation",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["vqgan", "limits", "defaults", "augments"],
                                }
                            }
                        },
                    },
                    "401": error,
                },
            }
        },
        "/api/generate/{job_id}": {
            "get": {
                "summary": "One job: status, progress, result",
                "parameters": [job_id],
                "responses": {"200": job_json, "401": error, "404": error},
            }
        },
        "/api/generate/{job_id}/preview": {
            "get": {
                "summary": "The newest preview PNG of a job (the finished image once done)",
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    "401": error,
                    "404": error,
                },
            }
        },
        "/api/generate/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running job (a running one stops after its current step)",
                "parameters": [job_id],
                "responses": {"200": job_json, "401": error, "404": error, "409": error},
            }
        },
    }
