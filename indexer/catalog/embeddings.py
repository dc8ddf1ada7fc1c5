"""Embeddings: one vector per (model, content), float32 unit norm, stored in the catalog.

The catalog is the source of truth for vectors too (docs/design.md invariant 1): every vector index
is rebuilt from these rows without re-embedding a photo.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from indexer.catalog.images import chunked
from indexer.catalog.schema import OK, Embedding, Image


def as_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blobs(blobs: Sequence[bytes]) -> np.ndarray:
    return np.stack([np.frombuffer(b, dtype=np.float32) for b in blobs])


def embedded_among(s: Session, model_id: int, hashes: Sequence[str]) -> set[str]:
    """Which of these contents already have an embedding of this model."""
    out: set[str] = set()
    for chunk in chunked(hashes):
        out.update(
            s.scalars(
                select(Embedding.content_hash).where(
                    Embedding.model_id == model_id, Embedding.content_hash.in_(chunk)
                )
            )
        )
    return out


def embedded_contents(s: Session, model_id: int) -> set[str]:
    return set(s.scalars(select(Embedding.content_hash).where(Embedding.model_id == model_id)))


def add_embeddings(s: Session, model_id: int, vectors: dict[str, np.ndarray], now: datetime) -> None:
    """New contents' vectors, in one statement (the caller makes sure none exists yet)."""
    if vectors:
        rows = [
            {"model_id": model_id, "content_hash": h, "vector": as_blob(v), "created_at": now}
            for h, v in vectors.items()
        ]
        s.execute(insert(Embedding), rows)


def put_embeddings(s: Session, model_id: int, vectors: dict[str, np.ndarray], now: datetime) -> None:
    """Insert or replace (re-embedding with another model may meet a content embedded before)."""
    for h, v in vectors.items():
        s.merge(Embedding(model_id=model_id, content_hash=h, vector=as_blob(v), created_at=now))


def searchable_vectors_of(
    s: Session, model_id: int, image_ids: Iterable[int] | None = None
) -> list[tuple[int, bytes]]:
    """(image id, vector blob) of OK images with an embedding of this model, by id."""
    q = (
        select(Image.id, Embedding.vector)
        .join(Embedding, Embedding.content_hash == Image.content_hash)
        .where(Embedding.model_id == model_id, Image.status == OK)
        .order_by(Image.id)
    )
    if image_ids is None:
        return [tuple(r) for r in s.execute(q)]
    rows: list = []
    for chunk in chunked(list(image_ids)):
        rows += s.execute(q.where(Image.id.in_(chunk))).all()
    return [tuple(r) for r in rows]


def searchable_ids(s: Session, model_id: int) -> list[int]:
    return list(
        s.scalars(
            select(Image.id)
            .join(Embedding, Embedding.content_hash == Image.content_hash)
            .where(Embedding.model_id == model_id, Image.status == OK)
            .order_by(Image.id)
        )
    )
