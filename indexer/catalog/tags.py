"""Tags and their states on images: the SQL behind suggestions (indexer/tags/suggest.py) and a person's
decisions (indexer/tags/store.py). Functions take the caller's Session, so a batch's suggestions commit
with its rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, case, delete, func, select
from sqlalchemy.orm import Session

from indexer.catalog.images import chunked
from indexer.catalog.schema import ACCEPTED, OK, REJECTED, SUGGESTED, Image, ImageTag, Tag
from indexer.errors import UnknownImage

VOCABULARY = "vocabulary"  # Tag.source of concepts that came from a vocabulary
USER = "user"  # Tag.source of tags a person typed


def tag_ids(s: Session, names: Iterable[str], source: str, now: datetime) -> dict[str, int]:
    """Ids of tags by name, creating the missing ones with `source`."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    for chunk in chunked(wanted):
        found.update(dict(s.execute(select(Tag.name, Tag.id).where(Tag.name.in_(chunk))).all()))
    for name in wanted:
        if name not in found:
            tag = Tag(name=name, source=source, created_at=now)
            s.add(tag)
            s.flush()
            found[name] = tag.id
    return found


def tag_id(s: Session, name: str) -> int | None:
    return s.scalar(select(Tag.id).where(Tag.name == name))


def tag_source(s: Session, tag: int) -> str:
    return s.get(Tag, tag).source  # type: ignore[union-attr]


# -- suggestions -------------------------------------------------------------------------------------
def clear_suggestions(s: Session, image_ids: Sequence[int] | None = None) -> None:
    """Forget suggestions (of these images, or all); decisions stay."""
    if image_ids is None:
        s.execute(delete(ImageTag).where(ImageTag.state == SUGGESTED))
        return
    for chunk in chunked(image_ids):
        s.execute(delete(ImageTag).where(ImageTag.image_id.in_(chunk), ImageTag.state == SUGGESTED))


def tagged_pairs(s: Session, image_ids: Sequence[int]) -> set[tuple[int, int]]:
    """(image id, tag id) of every tag these images carry in any state."""
    out: set[tuple[int, int]] = set()
    for chunk in chunked(image_ids):
        q = select(ImageTag.image_id, ImageTag.tag_id).where(ImageTag.image_id.in_(chunk))
        out.update((i, t) for i, t in s.execute(q))
    return out


def add_suggestion(s: Session, image_id: int, tag: int, score: float, model_id: int, now: datetime) -> None:
    row = ImageTag(image_id=image_id, tag_id=tag, state=SUGGESTED, score=score, model_id=model_id)
    row.updated_at = now
    s.add(row)


def drop_unused_vocabulary_tags(s: Session) -> None:
    """Vocabulary tags no image carries any more (the concept left the vocabulary) go."""
    used = select(ImageTag.tag_id).distinct()
    s.execute(delete(Tag).where(Tag.source == VOCABULARY, Tag.id.not_in(used)))


# -- decisions ---------------------------------------------------------------------------------------
def require_image(s: Session, image_id: int) -> None:
    if s.get(Image, image_id) is None:
        raise UnknownImage(image_id)


def decide(s: Session, image_id: int, tag: int, state: str, now: datetime) -> ImageTag:
    """Set the image's tag to `state`; a suggestion's score is kept for reference."""
    row = s.get(ImageTag, (image_id, tag))
    if row is None:
        row = ImageTag(image_id=image_id, tag_id=tag, state=state, score=None, updated_at=now)
        s.add(row)
    else:
        row.state, row.updated_at = state, now
    return row


def forget(s: Session, image_id: int, tag: int | None) -> bool:
    """Drop the image's tag and any decision about it; True if there was one."""
    row = s.get(ImageTag, (image_id, tag)) if tag is not None else None
    if row is None:
        return False
    s.delete(row)
    return True


# -- reading -----------------------------------------------------------------------------------------
def tags_of(s: Session, image_id: int, include_rejected: bool = True) -> list[tuple]:
    """(name, state, score, source) of an image's tags: accepted, suggested by score, then rejected."""
    order = case((ImageTag.state == ACCEPTED, 0), (ImageTag.state == SUGGESTED, 1), else_=2)
    q = (
        select(Tag.name, ImageTag.state, ImageTag.score, Tag.source)
        .join(Tag, Tag.id == ImageTag.tag_id)
        .where(ImageTag.image_id == image_id)
        .order_by(order, ImageTag.score.desc(), Tag.name)
    )
    if not include_rejected:
        q = q.where(ImageTag.state != REJECTED)
    return [tuple(r) for r in s.execute(q)]  # type: ignore[misc]


def tag_counts(s: Session) -> list[tuple[str, str, int, int]]:
    """(name, source, accepted, suggested) over searchable images, tags in use only; by accepted count,
    then suggested count, then name."""
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
    return [(n, src, int(a or 0), int(sg or 0)) for n, src, a, sg in s.execute(q)]


def images_with_tags(s: Session, names: Sequence[str], states: Sequence[str] = (ACCEPTED,)) -> list[int]:
    """Sorted ids of searchable images carrying every tag in `names` in one of `states`."""
    q = (
        select(ImageTag.image_id)
        .join(Tag, Tag.id == ImageTag.tag_id)
        .join(Image, Image.id == ImageTag.image_id)
        .where(Tag.name.in_(list(names)), ImageTag.state.in_(list(states)), Image.status == OK)
        .group_by(ImageTag.image_id)
        .having(func.count(func.distinct(Tag.id)) == len(names))
        .order_by(ImageTag.image_id)
    )
    return list(s.scalars(q))


def carries_accepted(name: str) -> ColumnElement[bool]:
    """A filter clause: the image carries the tag `name`, accepted."""
    tagged: Select = (
        select(ImageTag.image_id)
        .join(Tag, Tag.id == ImageTag.tag_id)
        .where(Tag.name == name, ImageTag.state == ACCEPTED)
    )
    return Image.id.in_(tagged)
