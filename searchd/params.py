"""A search request's parameters, read from a query string, a form or a JSON body, and checked.

Everything a client sends passes through here before it reaches SQL or the vector index, so every
mistake becomes a QueryError (HTTP 400) with a sentence that names the parameter.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date

from werkzeug.datastructures import MultiDict

from indexer.catalog.filters import Filters
from indexer.query import Part, QueryError, parse_query
from indexer.tags.vocabulary import MAX_TAG_LENGTH, normalize_tag
from searchd.budgets import MAX_JSON_KEYS, MAX_LIST_VALUES, MAX_QUERY_PARTS, MAX_TAG_FILTERS, check_count

DEFAULT_LIMIT = 40
MAX_LIMIT = 200  # larger limits are capped, not refused: endless scrolling asks for pages anyway
MAX_OFFSET = 100_000  # the vector search costs offset + limit; deeper pages are refused
MAX_QUERY_CHARS = 2000
MAX_WEIGHT = 100.0  # beyond this a weight only loses float precision (and can overflow to NaN)
MAX_IMAGE_ID = 2**62  # FAISS and SQLite ids are signed 64-bit
TYPE_ALIASES = {"jpg": "jpeg", "tif": "tiff", "heic": "heif"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TYPE = re.compile(r"^\.?[A-Za-z0-9]{1,16}$")
_TRUE, _FALSE = {"1", "true"}, {"0", "false"}  # exactly what docs/api.md and the OpenAPI say


@dataclass
class SearchParams:
    parts: list[Part] = field(default_factory=list)  # from q, like and minus
    image: tuple[bytes, str] | None = None  # an uploaded example (bytes, file name)
    image_weight: float = 1.0
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @property
    def browsing(self) -> bool:
        """No query at all: the newest photos."""
        return not self.parts and self.image is None

    @property
    def kind(self) -> str:
        """A label for metrics: browse, text, image, like or combined."""
        kinds = {p.kind for p in self.parts} | ({"image"} if self.image else set())
        if not kinds:
            return "browse"
        if len(kinds) > 1:
            return "combined"
        return {"text": "text", "id": "like", "image": "image"}[kinds.pop()]


# The fields of a JSON search body and their JSON types (docs/api.md; searchd/openapi.py says the same).
TEXT, TEXTS, IDS, INT, NUMBER, BOOL = (
    "a string",
    "strings",
    "image ids",
    "a whole number",
    "a number",
    "true or false",
)
JSON_FIELDS = {
    "q": TEXT, "like": IDS, "minus": TEXTS, "limit": INT, "offset": INT, "folder": TEXT,
    "date_from": TEXT, "date_to": TEXT, "camera": TEXT, "type": TEXT, "tag": TEXTS, "generated": BOOL,
    "min_score": NUMBER, "image_weight": NUMBER,
}  # fmt: skip


def from_json(doc: object) -> MultiDict:
    """A JSON body as the same multi-valued mapping a query string gives (lists: repeated keys).

    Stricter than a query string, because JSON has types: each field must have its own (a number for
    limit, true or false for generated), lists only for like, minus and tag, and an unknown field is a
    mistake (a typo would otherwise be ignored). null means "not given"."""
    if not isinstance(doc, dict):
        raise QueryError('the JSON body must be an object such as {"q": "a red circle"}')
    check_count("fields in the JSON body", len(doc), MAX_JSON_KEYS)
    out: MultiDict = MultiDict()
    for key, value in doc.items():
        kind = JSON_FIELDS.get(key)
        if kind is None:
            raise QueryError(
                f"unknown field {key[:40]!r} in the JSON body; the fields are {', '.join(JSON_FIELDS)}"
            )
        if value is None:
            continue
        values = value if isinstance(value, list) and kind in (TEXTS, IDS) else [value]
        check_count(f"values for {key}", len(values), MAX_LIST_VALUES)
        for v in values:
            out.add(key, _json_scalar(key, kind, v))
    return out


def _json_scalar(key: str, kind: str, v: object) -> str:
    """One JSON value as query-string text, if it has the field's type."""
    if kind in (TEXT, TEXTS) and isinstance(v, str):
        return v
    if kind == BOOL and isinstance(v, bool):
        return "1" if v else "0"
    if not isinstance(v, bool):  # True is an int to Python, not to JSON
        if kind in (INT, IDS) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
            return str(int(v))
        if kind == NUMBER and isinstance(v, int | float):
            return repr(float(v))
    shown = "a list" if isinstance(v, list) else "an object" if isinstance(v, dict) else json.dumps(v)[:40]
    raise QueryError(f"{key} must be {kind}, not {shown}")


def parse_search(values: MultiDict, image: tuple[bytes, str] | None = None) -> SearchParams:
    # Counted before anything is parsed further or encoded: every part costs a text encoding.
    likes, minuses = values.getlist("like"), values.getlist("minus")
    check_count("like values", len(likes), MAX_QUERY_PARTS)
    check_count("minus values", len(minuses), MAX_QUERY_PARTS)
    q = _text(values, "q")
    check_count("parts in q (separated by '|')", q.count("|") + 1, MAX_QUERY_PARTS)
    parts = parse_query(q) if q else []
    for like in likes:
        parts.append(Part("id", str(_image_id(like, "like")), 1.0))
    for minus in minuses:
        minus = _check_length(minus, "minus").strip()
        if minus:
            parts.append(Part("text", minus, -1.0))
    for p in parts:
        if p.kind == "id":
            _image_id(p.value, f"#{p.value}")
        if not math.isfinite(p.weight) or abs(p.weight) > MAX_WEIGHT:
            raise QueryError(
                f"the weight {p.weight:g} of {p.value!r} is out of range (-{MAX_WEIGHT:g}..{MAX_WEIGHT:g})"
            )
    image_weight = _float(values, "image_weight", 1.0)
    if abs(image_weight) > MAX_WEIGHT:
        raise QueryError(f"image_weight must lie between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    params = SearchParams(
        parts=parts,
        image=image,
        image_weight=image_weight,
        filters=parse_filters(values),
        min_score=_min_score(values),
        limit=min(_int(values, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT),
        offset=_int(values, "offset", 0, minimum=0),
    )
    if params.offset > MAX_OFFSET:
        raise QueryError(f"offset must be at most {MAX_OFFSET}; narrow the search with filters instead")
    return params


def parse_filters(values: MultiDict) -> Filters:
    folder = _text(values, "folder")
    # date_from after date_to is not an error: no photo was taken in that span, so nothing matches.
    date_from, date_to = _date(values, "date_from"), _date(values, "date_to")
    raw_type = values.get("type") or ""
    if raw_type and not _TYPE.match(raw_type):
        raise QueryError(f"type must be a file type such as jpeg or png, not {raw_type[:40]!r}")
    kind = raw_type.lower().lstrip(".")
    generated = values.get("generated")
    if generated is not None and generated not in _TRUE | _FALSE:
        raise QueryError(f"generated must be 1 or 0 (or true or false), not {generated[:40]!r}")
    return Filters(
        folder=(folder.rstrip("/") or "/") if folder else None,
        date_from=date_from,
        date_to=date_to,
        camera=_text(values, "camera") or None,
        type=TYPE_ALIASES.get(kind, kind) or None,
        tags=_tags(values.getlist("tag")),
        generated=None if generated is None else generated in _TRUE,
    )


# -- single values ----------------------------------------------------------------------------------
def _text(values: MultiDict, name: str) -> str:
    return _check_length(values.get(name) or "", name).strip()


def _given(values: MultiDict, name: str) -> str | None:
    """A typed parameter's text, or None when absent; present but empty is a mistake, not "unset"."""
    raw = values.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        raise QueryError(f"{name} is empty; leave it out to get the default")
    return raw


def _check_length(text: str, name: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"{name} is too long ({len(text)} characters; the limit is {MAX_QUERY_CHARS})")
    if "\x00" in text:
        raise QueryError(f"{name} contains a NUL character")
    return text


def _int(values: MultiDict, name: str, default: int, minimum: int) -> int:
    raw = _given(values, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw):
        raise QueryError(f"{name} must be a whole number, not {raw[:40]!r}")
    n = int(raw)
    if n < minimum:
        raise QueryError(f"{name} must be at least {minimum}, not {n}")
    return n


def _float(values: MultiDict, name: str, default: float) -> float:
    raw = _given(values, name)
    if raw is None:
        return default
    try:
        x = float(raw)
    except ValueError:
        raise QueryError(f"{name} must be a number, not {raw[:40]!r}") from None
    if not math.isfinite(x):
        raise QueryError(f"{name} must be a finite number, not {raw[:40]!r}")
    return x


def _min_score(values: MultiDict) -> float | None:
    if values.get("min_score") is None:
        return None
    x = _float(values, "min_score", 0.0)
    if not -1.0 <= x <= 1.0:
        raise QueryError(f"min_score is a cosine similarity between -1 and 1, not {x:g}")
    return x


def _date(values: MultiDict, name: str) -> date | None:
    raw = _given(values, name)
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise QueryError(f"{name} must be a date like 2024-06-30, not {raw[:40]!r}") from None


def _image_id(raw: str, name: str) -> int:
    raw = raw.strip().lstrip("#")
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not 0 < int(raw) <= MAX_IMAGE_ID:
        raise QueryError(f"{name} must be an image id (a positive whole number), not {raw[:40]!r}")
    return int(raw)


def _tags(names: list[str]) -> tuple[str, ...]:
    """Tags are stored normalised (lower case, single spaces); so is the filter. Each is a subquery."""
    check_count("tag filters", len(names), MAX_TAG_FILTERS)
    out = []
    for name in names:
        if len(name) > MAX_TAG_LENGTH:
            raise QueryError(f"tag filter: {name[:30]!r}... is longer than {MAX_TAG_LENGTH} characters")
        if name.strip():
            try:
                out.append(normalize_tag(name))
            except ValueError as exc:
                raise QueryError(f"tag filter: {exc}") from exc
    return tuple(out)
