"""Image rows: the queries the writer, the watcher and the readers share, each written once.

Functions take the caller's Session, so they compose into one transaction (a batch's rows,
embeddings and change records commit together, docs/design.md invariant 3).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.orm import Session

from indexer.catalog.schema import ADDED, DELETED, OK, REMOVED, Change, Image

if TYPE_CHECKING:
    from indexer.catalog.store import Catalog

# SQLite builds before 3.32 allow 999 bound parameters per statement; 500 leaves room for the rest.
CHUNK = 500
KNOWN_PAGE = 5000  # rows per page when a root's rows are streamed in path order

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def at_or_under(path: str) -> ColumnElement[bool]:
    """The file at `path`, or everything below it if it is a folder."""
    prefix = path.rstrip(os.sep) + os.sep
    return (Image.path == path) | Image.path.startswith(prefix, autoescape=True)


def under(folder: str) -> ColumnElement[bool]:
    """Everything below `folder` (not the folder's own path)."""
    return Image.path.startswith(folder.rstrip(os.sep) + os.sep, autoescape=True)


@dataclass(frozen=True)
class Known:
    """What the catalog knows of a path."""

    id: int
    path: str
    size: int
    mtime: float
    status: str
    content_hash: str | None
    error: str | None = None


def known_in_root(catalog: Catalog, root_id: int, page: int = KNOWN_PAGE) -> Iterator[Known]:
    """Every row of a root in path order (binary, as Python compares str), a page per short read
    transaction: a first scan of millions of files holds neither the rows nor a read snapshot that
    would keep SQLite's WAL from being checkpointed."""
    after = ""
    while True:
        with catalog.session() as s:
            rows = s.execute(
                select(Image.id, Image.path, Image.size, Image.mtime, Image.status)
                .add_columns(Image.content_hash, Image.error)
                .where(Image.root_id == root_id, Image.path > after)
                .order_by(Image.path)
                .limit(page)
            ).all()
        for r in rows:
            yield Known(r.id, r.path, r.size, r.mtime, r.status, r.content_hash, r.error)
        if len(rows) < page:
            return
        after = rows[-1].path


def rows_at(s: Session, paths: Sequence[str]) -> dict[str, Image]:
    out: dict[str, Image] = {}
    for chunk in chunked(paths):
        out.update({im.path: im for im in s.scalars(select(Image).where(Image.path.in_(chunk)))})
    return out


def row_at(s: Session, path: str) -> Image | None:
    return s.scalar(select(Image).where(Image.path == path))


def deleted_with_content(s: Session, hashes: Sequence[str]) -> dict[str, list[Image]]:
    """Deleted rows whose content is among `hashes`: a photo that comes back keeps its id and tags."""
    out: dict[str, list[Image]] = {}
    for chunk in chunked(hashes):
        for im in s.scalars(select(Image).where(Image.content_hash.in_(chunk), Image.status == DELETED)):
            out.setdefault(im.content_hash or "", []).append(im)
    return out


def add_rows(s: Session, values: list[dict], now: datetime) -> list[int]:
    """Insert new images in bulk (one statement), each with its ADDED change record; their ids in order."""
    if not values:
        return []
    ids = list(s.scalars(insert(Image).returning(Image.id, sort_by_parameter_order=True), values).all())
    s.execute(insert(Change), [{"image_id": i, "kind": ADDED, "at": now} for i in ids])
    return ids


def record_change(s: Session, image_id: int | None, kind: str, now: datetime) -> None:
    """Advance the change sequence (docs/design.md invariant 2); image_id None: every image."""
    s.add(Change(image_id=image_id, kind=kind, at=now))


def mark_deleted(s: Session, ids: Iterable[int], now: datetime) -> int:
    """Take rows out of search, keeping them (a file that comes back gets its id); how many were OK."""
    removed = 0
    for image_id in ids:
        row = s.get(Image, image_id)
        if row is None or row.status == DELETED:
            continue
        if row.status == OK:
            record_change(s, row.id, REMOVED, now)
            removed += 1
        row.status = DELETED
    return removed


def ids_at_or_under(s: Session, paths: Iterable[str], status: str | None = None) -> list[int]:
    ids: list[int] = []
    for p in paths:
        q = select(Image.id).where(at_or_under(p))
        ids += s.scalars(q if status is None else q.where(Image.status == status))
    return ids


def paths_at_or_under(s: Session, paths: Iterable[str], status: str) -> set[str]:
    out: set[str] = set()
    for p in paths:
        out.update(s.scalars(select(Image.path).where(at_or_under(p), Image.status == status)))
    return out


def rows_at_or_under(s: Session, path: str) -> list[Image]:
    return list(s.scalars(select(Image).where(at_or_under(path))))


def files_under(s: Session, folder: str) -> dict[str, tuple[int, float]]:
    """path -> (size, mtime) of the rows below `folder` that are not deleted."""
    rows = s.execute(
        select(Image.path, Image.size, Image.mtime).where(under(folder), Image.status != DELETED)
    ).all()
    return {p: (size, mtime) for p, size, mtime in rows}


def has_searchable(s: Session, root_id: int) -> bool:
    return s.scalar(select(Image.id).where(Image.root_id == root_id, Image.status == OK).limit(1)) is not None


def statuses_at(s: Session, paths: Sequence[str]) -> list[tuple[str, str, datetime]]:
    """(path, status, indexed_at) of the rows at these paths."""
    out: list = []
    for chunk in chunked(paths):
        out += s.execute(
            select(Image.path, Image.status, Image.indexed_at).where(Image.path.in_(chunk))
        ).all()
    return [tuple(r) for r in out]


def searchable_by_content(s: Session) -> list[tuple[str, str]]:
    """(content hash, path) of every searchable image."""
    return [tuple(r) for r in s.execute(select(Image.content_hash, Image.path).where(Image.status == OK))]
