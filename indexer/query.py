"""The query language shared by `photoseek search` and searchd.

A query is a weighted sum of parts, each a text, an image file or an indexed image's id:

    "red circle"                          one text, weight 1
    "red circle | sunset:0.5"             parts separated by '|', an optional ':WEIGHT' at the end
    "red circle | blue background:-1"     a negative weight pushes results away from that part
    "#42:1 | more red"                    '#ID' is an indexed image ("more like this")

The CLI's --image PATH, --like ID and --minus TEXT add parts; weights default to 1 (--minus: -1).
The query vector is the normalised weighted sum of the parts' unit embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from indexer.errors import QueryError

__all__ = ["Part", "QueryError", "combine", "parse_query"]

_WEIGHT = re.compile(r"^(?P<body>.*?)\s*:\s*(?P<w>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$", re.S)
_IMAGE_ID = re.compile(r"^#(\d+)$")


@dataclass(frozen=True)
class Part:
    kind: str  # "text", "image" (a file path) or "id" (an indexed image)
    value: str
    weight: float = 1.0


def parse_query(text: str) -> list[Part]:
    parts: list[Part] = []
    for raw in text.split("|"):
        raw = raw.strip()
        if not raw:
            continue
        weight = 1.0
        m = _WEIGHT.match(raw)
        if m and m.group("body").strip():
            raw, weight = m.group("body").strip(), float(m.group("w"))
        idm = _IMAGE_ID.match(raw)
        parts.append(Part("id", idm.group(1), weight) if idm else Part("text", raw, weight))
    return parts


def combine(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    if not vectors:
        raise QueryError("empty query: give a description, an image, or both")
    if all(w <= 0 for w in weights):
        raise QueryError("a query needs at least one part with a positive weight")
    q = np.sum([w * v for v, w in zip(vectors, weights, strict=True)], axis=0).astype(np.float32)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise QueryError("the query's parts cancel each other out")
    return q / norm
