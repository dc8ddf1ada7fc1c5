"""The catalog at a glance, for `photoseek status`: roots, counts by status, failures by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

from indexer.catalog.schema import FAILED, Change, Image, Root
from indexer.catalog.store import Catalog


@dataclass
class CatalogSummary:
    roots: list[dict]
    counts: Counter
    failures: list[tuple[str, int]]
    last_change: tuple[str, str, str] | None  # (when, kind, path)


def summarize_catalog(catalog: Catalog, top_failures: int = 10) -> CatalogSummary:
    with catalog.session() as s:
        per_root = Counter()
        for root_id, status, n in s.execute(
            select(Image.root_id, Image.status, func.count()).group_by(Image.root_id, Image.status)
        ):
            per_root[(root_id, status)] = n
        roots = []
        counts: Counter = Counter()
        for r in s.scalars(select(Root).order_by(Root.path)):
            c = {st: per_root[(r.id, st)] for st in ("ok", "failed", "deleted")}
            counts.update(c)
            roots.append(
                {
                    "path": r.path,
                    "online": r.online,
                    "observer": r.observer,
                    "last_scan_at": r.last_scan_at.isoformat(sep=" ", timespec="seconds")
                    if r.last_scan_at
                    else None,
                    **c,
                }
            )
        reasons: Counter = Counter()
        for error, n in s.execute(
            select(Image.error, func.count()).where(Image.status == FAILED).group_by(Image.error)
        ):
            reasons[(error or "unknown").split(" (", 1)[0]] += n
        last = s.execute(
            select(Change.at, Change.kind, Image.path)
            .outerjoin(Image, Image.id == Change.image_id)
            .order_by(Change.seq.desc())
            .limit(1)
        ).first()
    last_change = None
    if last is not None:
        last_change = (last[0].isoformat(sep=" ", timespec="seconds"), last[1], last[2] or "(all images)")
    return CatalogSummary(roots, counts, reasons.most_common(top_failures), last_change)
