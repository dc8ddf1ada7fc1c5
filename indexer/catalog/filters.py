"""Filters, browsing and facets as SQL, fast at 10M photos: index seeks and ranges, never a scan.

A filtered search computes the allowed ids here and hands them to the vector index (a FAISS id
selector), so a filter never drops results that a post-filter over the top k would have missed.
Each query leans on an index of migration 0002 (bench/RESULTS.md, issue 15, has the timings):
folders come from the trigger-kept `folders` table, distinct cameras and types from a loose index
scan (one seek per distinct value), the date range from four min/max seeks, and the date filters are
written as ranges over (status, taken_at, mtime) that mean what taken_date() means.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import ColumnElement, and_, func, select, text, union_all
from sqlalchemy.orm import Session

from indexer.catalog.schema import OK, Folder, Image, ImageTag, Tag
from indexer.catalog.store import Catalog


@dataclass(frozen=True)
class Filters:
    """Restrictions on which photos may be answered; all empty means the whole library."""

    folder: str | None = None  # absolute folder; its subfolders are included
    date_from: date | None = None  # inclusive, on the taken-at date (else the file's date)
    date_to: date | None = None
    camera: str | None = None
    type: str | None = None  # lower-case format name: jpeg, png, heif, ...
    tags: tuple[str, ...] = ()  # accepted tags, all required
    generated: bool | None = None

    @property
    def active(self) -> bool:
        return (
            any(
                v not in (None, ())
                for v in (self.folder, self.date_from, self.date_to, self.camera, self.type)
            )
            or bool(self.tags)
            or self.generated is not None
        )


ACCEPTED = "accepted"


def taken_date() -> ColumnElement:
    """The photo's date (YYYY-MM-DD): EXIF taken-at, else the file's modification time (local)."""
    return func.coalesce(func.date(Image.taken_at), func.date(Image.mtime, "unixepoch", "localtime"))


def taken_datetime() -> ColumnElement:
    return func.coalesce(func.datetime(Image.taken_at), func.datetime(Image.mtime, "unixepoch", "localtime"))


def clauses(f: Filters) -> list[ColumnElement]:
    where: list[ColumnElement] = [Image.status == OK]
    if f.folder:
        prefix = f.folder if f.folder.endswith(os.sep) else f.folder + os.sep
        where.append(under_folder(prefix))  # index ranges, not scans (searchd/facet_queries.py)
    if f.date_from or f.date_to:
        where.append(taken_between(f.date_from, f.date_to))
    if f.camera:
        where.append(Image.camera == f.camera)
    if f.type:
        where.append(func.lower(Image.format) == f.type)
    if f.generated is not None:
        where.append(Image.generated == f.generated)
    for name in f.tags:
        tagged = (
            select(ImageTag.image_id)
            .join(Tag, Tag.id == ImageTag.tag_id)
            .where(Tag.name == name, ImageTag.state == ACCEPTED)
        )
        where.append(Image.id.in_(tagged))
    return where


def allowed_ids(catalog: Catalog, f: Filters) -> np.ndarray | None:
    """Ids that pass the filters; None when there are no filters (search everything)."""
    if not f.active:
        return None
    stmt = select(Image.id).where(*clauses(f))
    with catalog.engine.connect() as conn:  # rows straight into numpy: 2.8M ids 0.7 s, not 3.8 s via the ORM
        cur = conn.execute(stmt).cursor
        return np.fromiter((r[0] for r in cur), dtype=np.int64)


def newest(catalog: Catalog, f: Filters, limit: int, offset: int) -> list[Image]:
    """Browse mode: the newest photos that pass the filters, in taken_datetime() order. The EXIF-dated
    and the undated photos each come newest first off the index (status, taken_at, mtime) and are
    merged (searchd/facet_queries.py): sorting taken_datetime() over every row took 3.8 s at 10M."""
    want = limit + offset
    dated = select(Image).where(*clauses(f), Image.taken_at.is_not(None))
    undated = select(Image).where(*clauses(f), Image.taken_at.is_(None))
    with catalog.session() as s:
        a = list(s.scalars(dated.order_by(Image.taken_at.desc(), Image.id.desc()).limit(want)))
        b = list(s.scalars(undated.order_by(Image.mtime.desc(), Image.id.desc()).limit(want)))
        if len(b) == want:
            # The merge orders by whole seconds, then id; the index by mtime's fraction too. Every row in
            # the last fetched second must be in hand, or pages disagree about where they end.
            b = list(s.scalars(undated.where(Image.mtime >= math.floor(b[-1].mtime))))
    return newest_first(a, b)[offset:want]


def facets(catalog: Catalog) -> dict:
    """What the filters can be set to: folders, cameras, types, accepted tags and the date range.
    Index seeks and the trigger-kept folders table, so it costs the same at 10M photos as at 1k."""
    with catalog.session() as s:
        folders = folder_counts(s)
        cameras = distinct_values(s, "camera")
        types = {t.lower() for t in distinct_values(s, "format")}
        tags = accepted_tag_counts(s)
        date_min, date_max = date_range(s)
    return {
        "folders": sorted(path for path, _ in folders),
        "cameras": sorted(cameras),
        "types": sorted(types),
        "tags": [{"name": name, "count": n} for name, n in tags],
        "date_min": date_min,
        "date_max": date_max,
        "count": sum(n for _, n in folders),
    }


# Columns a loose index scan may walk: each leads an index after status (migration 0002).
_DISTINCT_SQL = {
    column: text(
        f"""WITH RECURSIVE v(x) AS (
              SELECT min({column}) FROM images WHERE status = 'ok' AND {column} IS NOT NULL
              UNION ALL
              SELECT (SELECT min({column}) FROM images WHERE status = 'ok' AND {column} > v.x)
              FROM v WHERE v.x IS NOT NULL)
            SELECT x FROM v WHERE x IS NOT NULL"""
    )
    for column in ("camera", "format")
}


def folder_counts(s: Session) -> list[tuple[str, int]]:
    """(folder, OK images in it) for every folder holding any."""
    return [(p, n) for p, n in s.execute(select(Folder.path, Folder.images).where(Folder.images > 0))]


def distinct_values(s: Session, column: str) -> list[str]:
    """Distinct non-null values of images.camera or images.format among OK images."""
    return [r[0] for r in s.execute(_DISTINCT_SQL[column])]


def date_range(s: Session) -> tuple[str | None, str | None]:
    """(first, last) taken_date() over OK images: EXIF dates where known, else the file's local date."""
    ok = Image.status == "ok"
    dated, undated = and_(ok, Image.taken_at.is_not(None)), and_(ok, Image.taken_at.is_(None))
    firsts, lasts = [], []
    for fn, out in ((func.min, firsts), (func.max, lasts)):
        out.append(s.scalar(select(fn(Image.taken_at)).where(dated)))
        out.append(s.scalar(select(fn(Image.mtime)).where(undated)))
    first = _days(s, *firsts)
    last = _days(s, *lasts)
    return (min(first) if first else None), (max(last) if last else None)


def _days(s: Session, taken: datetime | None, mtime: float | None) -> list[str]:
    out = []
    if taken is not None:
        out.append(taken.date().isoformat())
    if mtime is not None:  # SQLite's own conversion, as taken_date() does it
        out.append(s.scalar(text("SELECT date(:m, 'unixepoch', 'localtime')"), {"m": mtime}))
    return out


def _local_midnight(day: date) -> tuple[datetime, float]:
    """Midnight starting `day`, as a naive datetime (EXIF) and as a local epoch (mtime)."""
    midnight = datetime.combine(day, datetime.min.time())
    return midnight, time.mktime(midnight.timetuple())


def taken_between(first: date | None, last: date | None) -> ColumnElement[bool]:
    """first <= taken_date() <= last (either may be open), as two bounded ranges of the index
    (status, taken_at, mtime): EXIF-dated photos by taken_at, the others by mtime, joined by UNION ALL
    (written as an OR, SQLite scans every OK row of the index: 0.75 s for a month at 10M)."""
    ok = Image.status == "ok"
    dated, undated = [ok, Image.taken_at.is_not(None)], [ok, Image.taken_at.is_(None)]
    if first is not None:
        midnight, epoch = _local_midnight(first)
        dated.append(Image.taken_at >= midnight)
        undated.append(Image.mtime >= epoch)
    if last is not None:
        midnight, epoch = _local_midnight(last + timedelta(days=1))  # before the next day's midnight
        dated.append(Image.taken_at < midnight)
        undated.append(Image.mtime < epoch)
    return Image.id.in_(union_all(select(Image.id).where(*dated), select(Image.id).where(*undated)))


def accepted_tag_counts(s: Session) -> list[tuple[str, int]]:
    """(tag, OK images with it accepted), most used first. All accepted tags are counted on the
    index (tag_id, state, image_id), then those on photos that are not OK (deleted, failed: few) are
    taken off; joining every accepted tag with its image row cost 1.7 s at 10M photos, 300k tags."""
    every = dict(
        s.execute(
            text("SELECT tag_id, count(*) FROM image_tags WHERE state = 'accepted' GROUP BY tag_id")
        ).all()
    )
    gone = s.execute(
        text(
            # CROSS JOIN keeps this order: the few non-OK images first (ix_images_status), then their tags
            "SELECT t.tag_id, count(*) FROM images i CROSS JOIN image_tags t ON t.image_id = i.id"
            " WHERE i.status IN ('deleted', 'failed') AND t.state = 'accepted' GROUP BY t.tag_id"
        )
    ).all()
    for tag_id, n in gone:
        every[tag_id] -= n
    names = dict(s.execute(text("SELECT id, name FROM tags")).all()) if every else {}
    counts = [(names[t], n) for t, n in every.items() if n > 0]
    return sorted(counts, key=lambda c: (-c[1], c[0]))


def newest_first(rows_dated: list, rows_undated: list) -> list:
    """Merge two newest-first lists (EXIF-dated by taken_at, undated by mtime) into the order of
    ORDER BY coalesce(datetime(taken_at), datetime(mtime, 'unixepoch', 'localtime')) DESC, id DESC:
    each half comes off an index in order, where the expression forced a sort of every row."""

    def key(row) -> tuple[str, int]:
        if row.taken_at is not None:
            return row.taken_at.strftime("%Y-%m-%d %H:%M:%S"), row.id
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.mtime)), row.id

    return sorted([*rows_dated, *rows_undated], key=key, reverse=True)


def under_folder(prefix: str) -> ColumnElement[bool]:
    """path starts with prefix (which ends with the separator), as a range on the path index:
    LIKE 'x%' cannot use it (case-insensitive, and an ESCAPE clause)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(Image.path >= prefix, Image.path < upper)
