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
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from indexer.catalog.schema import OK, Image, ImageTag, Tag
from indexer.catalog.store import Catalog, utcnow
from indexer.tags.suggest import ACCEPTED, REJECTED, SUGGESTED, tag_ids
from indexer.tags.vocabulary import normalize_tag

USER = "user"  # Tag.source of tags a person typed
ACTIONS = ("accept", "reject", "add", "remove")


class UnknownImage(LookupError):
    def __init__(self, image_id: int) -> None:
        super().__init__(f"there is no image #{image_id} in the catalog")
        self.image_id = image_id


@dataclass(frozen=True)
class ImageTagView:
    name: str
    state: str
    score: float | None
    source: str

    def as_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "score": self.score, "source": self.source}


def _require_image(s: Session, image_id: int) -> None:
    if s.get(Image, image_id) is None:
        raise UnknownImage(image_id)


def _decide(catalog: Catalog, image_id: int, name: str, state: str) -> ImageTagView:
    name = normalize_tag(name)
    with catalog.session() as s:
        _require_image(s, image_id)
        tag_id = tag_ids(s, [name], source=USER)[name]
        row = s.get(ImageTag, (image_id, tag_id))
        if row is None:
            row = ImageTag(image_id=image_id, tag_id=tag_id, state=state, score=None, updated_at=utcnow())
            s.add(row)
        else:
            row.state, row.updated_at = state, utcnow()  # the suggestion's score is kept for reference
        source = s.get(Tag, tag_id).source  # type: ignore[union-attr]
        return ImageTagView(name, state, row.score, source)


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
        _require_image(s, image_id)
        tag_id = s.scalar(select(Tag.id).where(Tag.name == name))
        row = s.get(ImageTag, (image_id, tag_id)) if tag_id is not None else None
        if row is None:
            return False
        s.delete(row)
        return True


def apply(catalog: Catalog, image_id: int, name: str, action: str) -> ImageTagView | None:
    """One of ACTIONS by name (the HTTP API and the CLI share this)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown tag action {action!r}; use one of {', '.join(ACTIONS)}")
    if action == "remove":
        remove(catalog, image_id, name)
        return None
    return {"accept": accept, "add": add, "reject": reject}[action](catalog, image_id, name)


def tags_of(catalog: Catalog, image_id: int, include_rejected: bool = True) -> list[ImageTagView]:
    """An image's tags: accepted first, then suggestions by score, then rejections."""
    order = case((ImageTag.state == ACCEPTED, 0), (ImageTag.state == SUGGESTED, 1), else_=2)
    with catalog.session() as s:
        _require_image(s, image_id)
        q = (
            select(Tag.name, ImageTag.state, ImageTag.score, Tag.source)
            .join(Tag, Tag.id == ImageTag.tag_id)
            .where(ImageTag.image_id == image_id)
            .order_by(order, ImageTag.score.desc(), Tag.name)
        )
        if not include_rejected:
            q = q.where(ImageTag.state != REJECTED)
        return [ImageTagView(*row) for row in s.execute(q)]


def tag_counts(catalog: Catalog) -> list[dict]:
    """[{"name", "source", "accepted", "suggested"}] over searchable images; tags in use only.

    Sorted by accepted count, then suggested count, then name.
    """
    accepted = func.sum(case((ImageTag.state == ACCEPTED, 1), else_=0))
    suggested = func.sum(case((ImageTag.state == SUGGESTED, 1), else_=0))
    q = (
        select(Tag.name, Tag.source, accepted, suggested)
        .join(ImageTag, ImageTag.tag_id == Tag.id)
        .join(Image, Image.id == ImageTag.image_id)
        .where(Image.status == OK)
        .group_by(Tag.id)
        .having((accepted + suggested) > 0)
        .order_by(accepted.desc(), suggested.desc(), Tag.name)
    )
    with catalog.session() as s:
        return [
            {"name": n, "source": src, "accepted": int(a or 0), "suggested": int(sg or 0)}
            for n, src, a, sg in s.execute(q)
        ]


def images_with_tags(
    catalog: Catalog, names: Sequence[str], states: Sequence[str] = (ACCEPTED,)
) -> np.ndarray:
    """Sorted int64 ids of searchable images carrying every tag in `names` (in one of `states`).

    This is the `allowed_ids` of a search filtered by tag (indexer.search.Searcher.search).
    """
    wanted = sorted({normalize_tag(n) for n in names})
    if not wanted:
        raise ValueError("name at least one tag to filter by")
    q = (
        select(ImageTag.image_id)
        .join(Tag, Tag.id == ImageTag.tag_id)
        .join(Image, Image.id == ImageTag.image_id)
        .where(Tag.name.in_(wanted), ImageTag.state.in_(list(states)), Image.status == OK)
        .group_by(ImageTag.image_id)
        .having(func.count(func.distinct(Tag.id)) == len(wanted))
        .order_by(ImageTag.image_id)
    )
    with catalog.session() as s:
        ids = list(s.scalars(q))
    return np.asarray(ids, dtype=np.int64)
