"""Rules of the API that JSON Schema cannot state, given to schemathesis (SCHEMATHESIS_HOOKS=this module).

searchd/openapi.py describes every field exactly, but three rules relate values to each other or
need the query language, so no schema can say them; docs/api.md states them in words:

- a search with query parts needs at least one with a positive weight (q's ':WEIGHT' parts, like,
  an image with a positive image_weight): "minus" alone steers away from nothing;
- a weight lies within -100..100 and an #ID in q is a positive id (q is free text to the schema);
- the labels to classify must be at least two once trimmed and lower-cased ("cat,Cat" is one);
- an uploaded file (search by image, classify, a generation's init image) must be an image Pillow
  can read: the schema can only say "binary", and schemathesis sends random bytes as well as real
  files (tests/test_security.py sends non-images, empty and truncated files on purpose).

A generated request that breaks one of them is left out of the run (its 400 is documented and right);
every other check runs on every other request, positive or negative.
"""

from __future__ import annotations

import io
import json
import math

import schemathesis
from PIL import Image

from indexer.query import parse_query
from searchd.params import MAX_IMAGE_ID, MAX_WEIGHT


def _values(container, key: str, as_text: bool) -> list:
    """The values of a field as the server receives them: in a query string or a form every value is
    text (None arrives as "null"); in JSON, null means the field is absent."""
    if not isinstance(container, dict) or key not in container:
        return []
    value = container[key]
    values = value if isinstance(value, list) else [value]
    if not as_text:
        return [v for v in values if v is not None]
    return [v if isinstance(v, str) else json.dumps(v) for v in values]


def _search_is_meaningful(values: dict, image: bool, as_text: bool) -> bool:
    """False when the query parts, taken together, break a rule above."""
    weights = []
    for q in _values(values, "q", as_text):
        if not isinstance(q, str):
            return True  # a type error: refused as such, whatever the rest says
        for part in parse_query(q):
            if not math.isfinite(part.weight) or abs(part.weight) > MAX_WEIGHT:
                return False
            if part.kind == "id" and not 0 < int(part.value) <= MAX_IMAGE_ID:
                return False
            weights.append(part.weight)
    weights += [1.0 for like in _values(values, "like", as_text) if str(like).strip()]
    weights += [-1.0 for m in _values(values, "minus", as_text) if isinstance(m, str) and m.strip()]
    if image:
        try:
            weights.append(float(values.get("image_weight", 1.0)))
        except (TypeError, ValueError):
            return True
    return not weights or any(w > 0 for w in weights)


def _labels_are_meaningful(labels) -> bool:
    items = labels.split(",") if isinstance(labels, str) else labels
    if not isinstance(items, list):
        return True
    distinct = {" ".join(i.split()).lower() for i in items if isinstance(i, str) and i.strip()}
    return len(distinct) >= 2 or not all(isinstance(i, str) for i in items)


UPLOAD_FIELDS = ("image", "init_image")


def _is_image(value) -> bool:
    data = getattr(value, "data", value)
    if not isinstance(data, bytes):
        return True  # not a file part: its own checks apply
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception:  # anything Pillow cannot read is "not an image" to the server too
        return False
    return True


@schemathesis.hook
def filter_case(context, case) -> bool:
    path, method = case.operation.path, case.method.upper()
    uploads = [case.body[f] for f in UPLOAD_FIELDS if isinstance(case.body, dict) and f in case.body]
    if not all(_is_image(upload) for upload in uploads):
        return False
    if path == "/api/search":
        values = case.query if method == "GET" else case.body
        as_text = method == "GET" or "json" not in (case.media_type or "")
        image = method == "POST" and isinstance(case.body, dict) and "image" in case.body
        return not isinstance(values, dict) or _search_is_meaningful(values, image, as_text)
    if path == "/api/classify" and isinstance(case.body, dict) and "labels" in case.body:
        return _labels_are_meaningful(case.body["labels"])
    return True
