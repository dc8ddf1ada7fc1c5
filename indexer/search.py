"""Search: encode the query, find the nearest vectors, join with the catalog.

A Searcher belongs to a Library (indexer/library.py), which makes it and keeps it caught up. It
reads the catalog and the vector index and never writes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.catalog.schema import OK
from indexer.decode import decode_bytes
from indexer.errors import DecodeError, QueryError, UnknownImage
from indexer.query import Part, combine
from indexer.vectors import VectorIndex

if TYPE_CHECKING:
    from indexer.library import Library

TEXT_CACHE_SIZE = 1024


@dataclass
class Hit:
    id: int
    score: float
    path: str
    width: int | None
    height: int | None
    taken_at: datetime | None
    camera: str | None
    format: str | None
    caption: str | None
    generated: bool

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        return d


class Searcher:
    """Thread-safe. The vector index opens now; the model loads with the first query that needs it."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.settings = library.settings
        self.catalog = library.catalog
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        identity = self.catalog.active_model()
        if identity is None:
            raise library.no_photos()
        self.vectors = VectorIndex.open(
            self.catalog,
            library.layout.vectors,
            identity,
            self.settings.approximate_above,
            self.settings.ondisk_above,
        )

    def catch_up(self) -> bool:
        return self.vectors.catch_up(self.catalog)

    def _encoder(self):
        encoder = self.library.encoder()
        if encoder.identity != self.vectors.identity:  # vectors of another model are not comparable
            self.library.check_model(encoder.identity)
        return encoder

    # -- query vectors ------------------------------------------------------------------------------
    def text_vector(self, text: str) -> np.ndarray:
        with self._cache_lock:
            if text in self._text_cache:
                self._text_cache.move_to_end(text)
                return self._text_cache[text]
        vec = self._encoder().encode_texts([text])[0]
        with self._cache_lock:
            self._text_cache[text] = vec
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return vec

    def image_vector(self, data: bytes, name: str = "upload") -> np.ndarray:
        encoder = self._encoder()
        try:
            decoded = decode_bytes(data, name, self.settings.max_megapixels, draft=encoder.image_size)
        except DecodeError as exc:
            raise QueryError(f"cannot search by {Path(name).name}: {exc}") from exc
        return encoder.encode_images([decoded.image])[0]

    def stored_vector(self, image_id: int) -> np.ndarray:
        vec = self.vectors.vector(image_id)
        if vec is None:
            why = f"image #{image_id} is not in the index (unknown, removed, or failed to index)"
            raise UnknownImage(image_id, why)  # a 404, as for every id the library lacks
        return vec

    def part_vector(self, part: Part) -> np.ndarray:
        """One part of a query: a text, an indexed image (#ID) or an image file on this machine."""
        if part.kind == "text":
            return self.text_vector(part.value)
        if part.kind == "id":
            return self.stored_vector(int(part.value))
        path = Path(part.value)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise QueryError(f"cannot read query image {path}: {exc.strerror}") from exc
        return self.image_vector(data, path.name)

    def query_vector(self, parts: list[Part]) -> np.ndarray:
        return combine([self.part_vector(p) for p in parts], [p.weight for p in parts])

    # -- searching ----------------------------------------------------------------------------------
    def search(
        self,
        parts: list[Part],
        limit: int = 20,
        offset: int = 0,
        allowed_ids: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        return self.search_vector(self.query_vector(parts), limit, offset, allowed_ids, min_score)

    def search_vector(
        self,
        q: np.ndarray,
        limit: int = 20,
        offset: int = 0,
        allowed_ids: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Search by a ready query vector (searchd combines an uploaded image's vector with parts)."""
        scores, ids = self.vectors.search(q, offset + limit, allowed_ids)
        scores, ids = scores[offset:], ids[offset:]
        rows = self.catalog.images_by_ids(ids.tolist())
        hits = []
        for score, image_id in zip(scores.tolist(), ids.tolist(), strict=True):
            row = rows.get(image_id)
            if row is None or row.status != OK or (min_score is not None and score < min_score):
                continue  # changed since the last catch-up
            hits.append(
                Hit(
                    row.id,
                    round(score, 4),
                    row.path,
                    row.width,
                    row.height,
                    row.taken_at,
                    row.camera,
                    row.format,
                    row.caption,
                    row.generated,
                )
            )
        return hits
