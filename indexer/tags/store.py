"""A person's tag decisions: accept or reject a suggestion, add an own tag, remove one; and the queries
that read tags back (an image's tags, counts per tag, images carrying tags for filtering).

Decisions are plain rows in image_tags (state "accepted" / "rejected") and survive recomputed
suggestions, moves and renames (the image keeps its id). They record no catalog Change: the change
sequence tells vector indexes what to re-read, and tags are not in any vector; filters read tags from
the catalog at query time, so a new tag filters correctly at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.catalog import tags as tag_rows
from indexer.catalog.schema import ACCEPTED, REJECTED
from indexer.catalog.store import Catalog, utcnow
from indexer.errors import BadInput, UnknownImage
from indexer.tags.vocabulary import normalize_tag

__all__ = ["ACTIONS", "ImageTagView", "UnknownImage", "accept", "add", "apply", "reject", "remove"]

USER = tag_rows.USER
ACTIONS = ("accept", "reject", "add", "remove")


@dataclass(frozen=True)
class ImageTagView:
    name: str
    state: str
    score: float | None
    source: str

    def as_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "score": self.score, "source": self.source}


def _decide(catalog: Catalog, image_id: int, name: str, state: str) -> ImageTagView:
    name = normalize_tag(name)
    with catalog.session() as s:
        tag_rows.require_image(s, image_id)
        now = utcnow()
        tag = tag_rows.tag_ids(s, [name], USER, now)[name]
        row = tag_rows.decide(s, image_id, tag, state, now)
        return ImageTagView(name, state, row.score, tag_rows.tag_source(s, tag))


def accept(catalog: Catalog, image_id: int, name: str) -> ImageTagView:
    """Accept a suggestion (or tag the image with `name` if nothing was suggested)."""
    return _decide(catalog, image_id, name, ACCEPTED)


def add(catalog: Catalog, image_id: int, name: str) -> ImageTagView:
    """Tag the image with `name`, creating the tag (source "user") if it is new."""
    return _decide(catalog, image_id, name, ACCEPTED)


def reject(catalog: Catalog, image_id: int, name: str) -> ImageTagView:
    """Say the tag is wrong for this image: it is never suggested for it again."""
    return _decide(catalog, image_id, name, REJECTED)


def remove(catalog: Catalog, image_id: int, name: str) -> bool:
    """Forget the image's tag and any decision about it; True if there was one.

    Removing a rejection undoes it (the tag may be suggested again at the next recompute).
    """
    name = normalize_tag(name)
    with catalog.session() as s:
        tag_rows.require_image(s, image_id)
        return tag_rows.forget(s, image_id, tag_rows.tag_id(s, name))


def apply(catalog: Catalog, image_id: int, name: str, action: str) -> ImageTagView | None:
    """One of ACTIONS by name (the HTTP API and the CLI share this)."""
    if action not in ACTIONS:
        raise BadInput(f"unknown tag action {action!r}; use one of {', '.join(ACTIONS)}")
    if action == "remove":
        remove(catalog, image_id, name)
        return None
    return {"accept": accept, "add": add, "reject": reject}[action](catalog, image_id, name)


def tags_of(catalog: Catalog, image_id: int, include_rejected: bool = True) -> list[ImageTagView]:
    """An image's tags: accepted first, then suggestions by score, then rejections."""
    with catalog.session() as s:
        tag_rows.require_image(s, image_id)
        return [ImageTagView(*row) for row in tag_rows.tags_of(s, image_id, include_rejected)]


def tag_counts(catalog: Catalog) -> list[dict]:
    """[{"name", "source", "accepted", "suggested"}] over searchable images; tags in use only."""
    with catalog.session() as s:
        rows = tag_rows.tag_counts(s)
    return [{"name": n, "source": src, "accepted": a, "suggested": sg} for n, src, a, sg in rows]


def images_with_tags(
    catalog: Catalog, names: Sequence[str], states: Sequence[str] = (ACCEPTED,)
) -> np.ndarray:
    """Sorted int64 ids of searchable images carrying every tag in `names` (in one of `states`)."""
    wanted = sorted({normalize_tag(n) for n in names})
    if not wanted:
        raise BadInput("name at least one tag to filter by")
    with catalog.session() as s:
        ids = tag_rows.images_with_tags(s, wanted, states)
    return np.asarray(ids, dtype=np.int64)
