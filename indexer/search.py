"""Search: encode the query, find nearest vectors, join with the catalog."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from indexer.catalog.schema import OK
from indexer.catalog.store import Catalog
from indexer.decode import DecodeError, decode_bytes
from indexer.encoder import Encoder
from indexer.pipeline import ModelMismatch
from indexer.query import Part, QueryError, combine
from indexer.settings import Settings
from indexer.vectors import VectorIndex

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
    """Reads the catalog and the vector index; never writes. Thread-safe."""

    def __init__(self, settings: Settings, catalog: Catalog, encoder: Callable[[], Encoder]) -> None:
        self.settings = settings
        self.catalog = catalog
        self._encoder = encoder
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        enc = encoder()
        active = catalog.active_model()
        if active is None:
            raise QueryError(f"the library in {settings.data_dir} has no photos yet: run `photoseek index`")
        if active != enc.identity:
            raise ModelMismatch(
                f"this library was indexed with {active.label}; searching it with {enc.identity.label} "
                f"is refused (the vectors are not comparable). Drop --model to use the library's model, "
                f"or switch the library with `photoseek reembed --model {settings.model}`"
            )
        self.vectors = VectorIndex.open(
            catalog, settings.vectors_dir, enc.identity, settings.approximate_above
        )

    @property
    def encoder(self) -> Encoder:
        return self._encoder()

    def catch_up(self) -> bool:
        return self.vectors.catch_up(self.catalog)

    # -- query vectors ------------------------------------------------------------------------------
    def text_vector(self, text: str) -> np.ndarray:
        with self._cache_lock:
            if text in self._text_cache:
                self._text_cache.move_to_end(text)
                return self._text_cache[text]
        vec = self.encoder.encode_texts([text])[0]
        with self._cache_lock:
            self._text_cache[text] = vec
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return vec

    def image_vector(self, data: bytes, name: str = "upload") -> np.ndarray:
        try:
            decoded = decode_bytes(data, name, self.settings.max_megapixels, draft=self.encoder.image_size)
        except DecodeError as exc:
            raise QueryError(f"cannot search by {Path(name).name}: {exc}") from exc
        return self.encoder.encode_images([decoded.image])[0]

    def stored_vector(self, image_id: int) -> np.ndarray:
        vec = self.vectors.vector(image_id)
        if vec is None:
            raise QueryError(f"image #{image_id} is not in the index (unknown, removed, or failed to index)")
        return vec

    def query_vector(self, parts: list[Part]) -> np.ndarray:
        vecs, weights = [], []
        for p in parts:
            if p.kind == "text":
                vecs.append(self.text_vector(p.value))
            elif p.kind == "id":
                vecs.append(self.stored_vector(int(p.value)))
            else:
                path = Path(p.value)
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise QueryError(f"cannot read query image {path}: {exc.strerror}") from exc
                vecs.append(self.image_vector(data, path.name))
            weights.append(p.weight)
        return combine(vecs, weights)

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
