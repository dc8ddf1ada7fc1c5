"""JSON in and out of searchd: bodies that cannot break a route, answers that are always valid JSON.

Python's json module accepts what no JSON parser should hand a route: NaN and Infinity (not JSON at
all), numbers like 1e999 (read as infinity), strings with lone surrogates (they fail later, when
SQLite or the tokenizer encodes them to UTF-8: a 500), and nesting so deep that the parser itself
overflows (a RecursionError: a 500, even on the unauthenticated /api/login). This provider refuses
each as a ValueError, which Flask's get_json turns into its usual bad-request path (a 400, or None
with silent=True), for every route. Answers are written with allow_nan=False; a NaN or infinity that
reaches one anyway (a bug) becomes null and a warning in the log rather than invalid JSON.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider

from indexer.errors import BadInput

log = logging.getLogger(__name__)

MAX_DEPTH = 32  # no photoseek body nests beyond 3
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise ValueError(f"the number {text[:40]} is too large; send a finite number")
    return value


def check_value(doc: Any) -> None:
    """ValueError when `doc` nests deeper than MAX_DEPTH or holds a string with a lone surrogate."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff); send valid text")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"the JSON nests deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    stack.append((key, depth))
                stack.append((item, depth + 1))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _no_constant)
        kwargs.setdefault("parse_float", _finite_float)
        try:
            doc = json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError(f"the JSON nests deeper than {MAX_DEPTH} levels") from None
        check_value(doc)
        return doc

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        try:
            return super().dumps(obj, allow_nan=False, **kwargs)
        except ValueError:
            log.warning("an answer held NaN or an infinity; sent as null")
            return super().dumps(_finite(obj), allow_nan=False, **kwargs)


def json_body() -> Any:
    """The request body parsed as JSON, whatever its Content-Type; BadInput saying why it is not."""
    data = request.get_data(cache=True)
    try:
        return current_app.json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the refusals above
        raise BadInput(f"the request body is not valid JSON: {exc}") from None


def init_app(app: Flask) -> None:
    sort_keys = app.json.sort_keys
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = sort_keys
