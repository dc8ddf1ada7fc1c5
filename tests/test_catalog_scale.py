"""Filters and facets rewritten for 10M photos mean what they meant: checked against the old
formulations (dirname of every path in Python, taken_date() compared as text) on a small catalog
that the writer's kinds of edits keep changing; and their plans use indexes, never a table scan."""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, datetime

import pytest
from sqlalchemy import select, text

from indexer.catalog import filters, open_catalog
from indexer.catalog.filters import Filters, clauses, facets, taken_date, under_folder
from indexer.catalog.schema import Image
from indexer.catalog.store import utcnow


def add(s, root_id: int, path: str, **kw) -> Image:
    row = Image(root_id=root_id, path=path, indexed_at=utcnow(), **kw)
    s.add(row)
    s.flush()
    return row


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(tmp_path / "data")
    root = cat.ensure_root(tmp_path / "photos")
    base = str(tmp_path / "photos")
    with cat.session() as s:
        # EXIF-dated and undated photos (mtimes around midnight, local time), cameras, formats
        for i in range(40):
            folder = f"{base}/{2020 + i % 3}/{'trip' if i % 2 else 'home'}"
            taken = datetime(2020 + i % 3, 1 + i % 12, 1 + i % 28, i % 24, 30) if i % 4 else None
            midnight = datetime(2021, 6, 1 + i % 5).timestamp()
            add(
                s,
                root.id,
                f"{folder}/IMG_{i:04d}.jpg",
                taken_at=taken,
                mtime=midnight + (i % 3 - 1) * 0.5,
                camera=("Canon EOS R5", "Pixel 8", None)[i % 3],
                format=("JPEG", "PNG", "HEIF", "jpeg")[i % 4],
                status="failed" if i == 5 else "ok",
            )
        add(s, root.id, f"{base}/top.jpg", mtime=0.0, format="JPEG")  # a file right in the root
        add(s, root.id, f"{base}/2020_x/odd.jpg", mtime=1e9, format="JPEG")  # a sibling named like a prefix
    with cat.session() as s:  # the writer's edits: moves, deletes, come-backs, rows removed
        rows = {r.path.rsplit("/", 1)[1]: r for r in s.scalars(select(Image))}
        rows["IMG_0001.jpg"].path = f"{base}/moved/IMG_0001.jpg"
        rows["IMG_0002.jpg"].status = "deleted"
        rows["IMG_0003.jpg"].status = "deleted"
        rows["IMG_0003.jpg"].status = "ok"
        s.delete(rows["IMG_0004.jpg"])
        rows["IMG_0006.jpg"].path = f"{base}/2020/home/renamed.jpg"
    with cat.engine.begin() as conn:  # accepted tags, some on photos that are no longer OK
        conn.execute(
            text(
                "INSERT INTO tags (id, name, source, created_at) VALUES (1, 'beach', 'user', 0),"
                " (2, 'dog', 'user', 0), (3, 'cake', 'user', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO image_tags (image_id, tag_id, state, updated_at) SELECT id, 1 + id % 3,"
                " CASE WHEN id % 5 = 0 THEN 'suggested' ELSE 'accepted' END, 0 FROM images"
            )
        )
    with cat.engine.begin() as conn:  # raw SQL, as bench catalogs and bulk inserts write
        conn.execute(
            text(
                "INSERT INTO images (root_id, path, size, mtime, status, generated, indexed_at) "
                "VALUES (:r, :p, 1, 5.0, 'ok', 0, '2026-01-01 00:00:00.000000')"
            ),
            [{"r": root.id, "p": f"{base}/raw/{i}.jpg"} for i in range(3)],
        )
    yield cat
    cat.close()


def ok_rows(catalog) -> list[Image]:
    with catalog.session() as s:
        return list(s.scalars(select(Image).where(Image.status == "ok")))


def test_folders_and_count_follow_every_kind_of_edit(catalog):
    rows = ok_rows(catalog)
    want = Counter(os.path.dirname(r.path) for r in rows)
    got = facets(catalog)
    assert got["folders"] == sorted(want) and got["count"] == len(rows) == sum(want.values())
    with catalog.session() as s:  # the table itself, counts included
        assert dict(s.execute(text("SELECT path, images FROM folders WHERE images > 0")).all()) == want


def test_cameras_types_and_date_range_as_before(catalog):
    rows = ok_rows(catalog)
    got = facets(catalog)
    assert got["cameras"] == sorted({r.camera for r in rows if r.camera})
    assert got["types"] == sorted({r.format.lower() for r in rows if r.format})
    with catalog.session() as s:
        lo, hi = s.execute(
            select(text("min(d)"), text("max(d)")).select_from(
                select(taken_date().label("d")).where(Image.status == "ok").subquery()
            )
        ).one()
    assert (got["date_min"], got["date_max"]) == (lo, hi)


def test_tag_counts_and_browse_order_as_before(catalog):
    from sqlalchemy import func

    from indexer.catalog.schema import ImageTag, Tag

    with catalog.session() as s:
        old_tags = s.execute(
            select(Tag.name, func.count(ImageTag.image_id))
            .join(ImageTag, ImageTag.tag_id == Tag.id)
            .join(Image, Image.id == ImageTag.image_id)
            .where(ImageTag.state == "accepted", Image.status == "ok")
            .group_by(Tag.name)
            .order_by(func.count(ImageTag.image_id).desc(), Tag.name)
        ).all()
    assert facets(catalog)["tags"] == [{"name": n, "count": c} for n, c in old_tags] and old_tags
    for f in (Filters(), Filters(camera="Pixel 8"), Filters(date_from=date(2021, 1, 1))):
        with catalog.session() as s:
            old = s.scalars(
                select(Image.id).where(*clauses(f)).order_by(filters.taken_datetime().desc(), Image.id.desc())
            ).all()
        for limit, offset in ((5, 0), (7, 3), (100, 0)):
            got = [r.id for r in filters.newest(catalog, f, limit, offset)]
            assert got == old[offset : offset + limit]


@pytest.mark.parametrize(
    "f",
    [
        Filters(date_from=date(2021, 6, 2)),
        Filters(date_to=date(2021, 6, 2)),
        Filters(date_from=date(2020, 3, 1), date_to=date(2021, 6, 3)),
        Filters(date_from=date(2022, 6, 1)),
        Filters(camera="Pixel 8", date_to=date(2021, 6, 30)),
    ],
)
def test_date_filters_mean_taken_date(catalog, f):
    with catalog.session() as s:
        got = set(s.scalars(select(Image.id).where(*clauses(f))))
        old = [Image.status == "ok"]
        if f.date_from:
            old.append(taken_date() >= f.date_from.isoformat())
        if f.date_to:
            old.append(taken_date() <= f.date_to.isoformat())
        if f.camera:
            old.append(Image.camera == f.camera)
        want = set(s.scalars(select(Image.id).where(*old)))
    assert got == want and want


def test_folder_filter_is_a_prefix_range(catalog, tmp_path):
    base = str(tmp_path / "photos")
    for folder in (f"{base}/2020", f"{base}/2020/", base, f"{base}/raw"):
        ids = set(filters.allowed_ids(catalog, Filters(folder=folder)).tolist())
        prefix = folder.rstrip("/") + "/"
        assert ids == {r.id for r in ok_rows(catalog) if r.path.startswith(prefix)}
    assert f"{base}/2020_x/odd.jpg" not in {r.path for r in ok_rows(catalog) if r.id in ids}


def plan(catalog, stmt) -> str:
    with catalog.engine.connect() as conn:
        sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        return " | ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))


@pytest.mark.parametrize(
    "f",
    [
        Filters(folder="/photos/2020"),
        Filters(date_from=date(2021, 6, 2), date_to=date(2021, 6, 9)),
        Filters(camera="Pixel 8"),
        Filters(tags=("beach",)),
    ],
)
def test_filters_read_indexes_not_the_table(catalog, f):
    p = plan(catalog, select(Image.id).where(*clauses(f)))
    assert "SCAN images" not in p and "USING" in p, p


def test_facet_queries_seek(catalog):
    from indexer.catalog.filters import _DISTINCT_SQL

    with catalog.engine.connect() as conn:
        for sql in _DISTINCT_SQL.values():
            p = " | ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "SCAN images" not in p, p
    assert "SCAN images" not in plan(
        catalog,
        select(Image.mtime).where(Image.status == "ok", Image.taken_at.is_(None)).order_by(Image.mtime),
    )
    assert "SCAN" not in plan(catalog, select(Image.id).where(under_folder("/photos/")))
