"""Facet and date-filter SQL that stays fast at 10M photos: index seeks and ranges, never a scan.

Each function leans on an index of migration 0002 (bench/RESULTS.md, issue 15, has the timings):
folders come from the trigger-kept `folders` table, distinct cameras and types from a loose index
scan (one seek per distinct value), the date range from four min/max seeks, and the date filters are
written as ranges over (status, taken_at, mtime) that mean what taken_date() means.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session

from indexer.catalog.schema import Folder, Image

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


def taken_on_or_after(day: date) -> ColumnElement[bool]:
    """taken_date() >= day, as two index ranges (one for EXIF-dated photos, one for the rest)."""
    midnight, epoch = _local_midnight(day)
    return or_(Image.taken_at >= midnight, and_(Image.taken_at.is_(None), Image.mtime >= epoch))


def taken_on_or_before(day: date) -> ColumnElement[bool]:
    """taken_date() <= day: before the next day's midnight."""
    midnight, epoch = _local_midnight(day + timedelta(days=1))
    return or_(Image.taken_at < midnight, and_(Image.taken_at.is_(None), Image.mtime < epoch))


def under_folder(prefix: str) -> ColumnElement[bool]:
    """path starts with prefix (which ends with the separator), as a range on the path index:
    LIKE 'x%' cannot use it (case-insensitive, and an ESCAPE clause)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(Image.path >= prefix, Image.path < upper)
