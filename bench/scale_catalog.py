"""Synthetic archive-scale catalogs (1M, 10M rows) with the metadata filters and facets look at.

Like bench.catalogs, rows go in through the DBAPI cursor's executemany, but with a library's shape:
two roots of year/month folders, ids in scan order (so roughly chronological), 85 % of photos with
an EXIF date, 40 camera models of Zipf popularity (10 % without), JPEG/HEIF/PNG/DNG, 1 % deleted,
0.3 % failed (no embedding), 2 % with one or two accepted tags out of 300, one 'added' change per
image. Vectors are bench.clip_like's, 512-d float32, as the writer stores them.

The rows are written at schema revision 0001 and the catalog is then migrated to head, as an
existing library would be: the migration's cost at this size is a figure of its own.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from alembic import command
from sqlalchemy import create_engine, event
from sqlalchemy.pool import NullPool

from bench.clip_like import ClipLike
from bench.corpus import CACHE
from indexer.catalog.migrate import _begin_exclusive, _driver_stays_out, alembic_config, upgrade_to_head
from indexer.catalog.store import ModelIdentity, create_catalog_engine

VERSION = 1
IDENTITY = ModelIdentity("ViT-B-32-256", "random", "seed0", 512)
CHUNK = 50_000
STAMP = "2026-01-01 00:00:00.000000"
FIRST_DAY = datetime(2006, 1, 1)
YEARS = 20
CAMERAS = [
    f"{make} {model}"
    for make in ("Canon", "Nikon", "Sony", "Fujifilm", "Apple", "Google", "Samsung", "Leica")
    for model in ("A", "B", "C", "D", "E")
]
FORMATS = np.array(["JPEG", "HEIF", "PNG", "DNG"])
TAGS = 300


def catalog_dir(n: int) -> Path:
    return CACHE / "catalogs" / f"scale-{n}-v{VERSION}"


def build(n: int, with_vectors: bool = True) -> tuple[Path, dict]:
    """The data dir of an n-image catalog (cached); returns (dir, facts about how it was made)."""
    data_dir = catalog_dir(n)
    done = data_dir / "bench-catalog.json"
    if done.exists():
        return data_dir, json.loads(done.read_text())
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    path = data_dir / "catalog.sqlite"
    engine = create_catalog_engine(path)
    _migrate(engine, "0001")
    started = time.perf_counter()
    _fill(engine, n, with_vectors)
    filled = time.perf_counter() - started
    engine.dispose()
    engine = create_catalog_engine(path)
    started = time.perf_counter()
    upgrade_to_head(engine)  # 0002: the scale indexes and the folders table, over n existing rows
    migrated = time.perf_counter() - started
    engine.dispose()
    facts = {
        "n": n,
        "fill_s": filled,
        "migrate_s": migrated,
        "bytes": sum(p.stat().st_size for p in data_dir.glob("catalog.sqlite*")),
        "vectors": with_vectors,
    }
    done.write_text(json.dumps(facts))
    return data_dir, facts


def _migrate(engine, revision: str) -> None:
    migrator = create_engine(engine.url, poolclass=NullPool)
    event.listen(migrator, "connect", _driver_stays_out)
    event.listen(migrator, "begin", _begin_exclusive)
    with migrator.begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    migrator.dispose()


def _fill(engine, n: int, with_vectors: bool) -> None:
    rng = np.random.default_rng(n)
    world = ClipLike(n, IDENTITY.dim, seed=n)
    camera_p = 1.0 / np.arange(1, len(CAMERAS) + 1) ** 1.2
    camera_p /= camera_p.sum()
    tag_p = 1.0 / np.arange(1, TAGS + 1)
    tag_p /= tag_p.sum()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")  # a benchmark fixture: rebuilt from scratch if interrupted
        cur.execute(
            "INSERT INTO models (id, name, pretrained, file_hash, dim, spec, created_at)"
            " VALUES (1, ?, ?, ?, ?, ?, ?)",
            (
                IDENTITY.name,
                IDENTITY.pretrained,
                IDENTITY.file_hash,
                IDENTITY.dim,
                "ViT-B-32-256:random",
                STAMP,
            ),
        )
        cur.execute("INSERT INTO settings (key, value) VALUES ('active_model', '1')")
        for r in (1, 2):
            cur.execute(
                "INSERT INTO roots (id, path, online, added_at) VALUES (?, ?, 1, ?)",
                (r, f"/archive/{r}", STAMP),
            )
        cur.executemany(
            "INSERT INTO tags (id, name, source, created_at) VALUES (?, ?, 'vocabulary', ?)",
            [(t + 1, f"tag{t:03d}", STAMP) for t in range(TAGS)],
        )
        chunks = world.chunks(CHUNK) if with_vectors else iter(lambda: None, 0)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            ids = np.arange(start + 1, start + m + 1)
            when = [FIRST_DAY + timedelta(days=YEARS * 365 * (i - 1) / n + float(rng.random())) for i in ids]
            dated = rng.random(m) < 0.85
            cams = rng.choice(len(CAMERAS), m, p=camera_p)
            no_cam = rng.random(m) < 0.10
            fmts = FORMATS[np.searchsorted([0.85, 0.95, 0.98, 1.0], rng.random(m))]
            state = rng.random(m)
            status = np.where(state < 0.01, "deleted", np.where(state < 0.013, "failed", "ok"))
            rows = []
            for j, i in enumerate(ids.tolist()):
                w = when[j]
                root = 1 + (i % 7 == 0)
                rows.append(
                    (
                        i,
                        root,
                        f"/archive/{root}/{w.year}/{w.month:02d}/IMG_{i:08d}.{fmts[j].lower()}",
                        w.timestamp(),
                        f"{i:064x}",
                        fmts[j],
                        w.strftime("%Y-%m-%d %H:%M:%S.000000") if dated[j] else None,
                        None if no_cam[j] else CAMERAS[cams[j]],
                        status[j],
                    )
                )
            cur.executemany(
                "INSERT INTO images (id, root_id, path, size, mtime, content_hash, format, width, height,"
                " taken_at, camera, status, generated, indexed_at)"
                f" VALUES (?, ?, ?, 3000000, ?, ?, ?, 4000, 3000, ?, ?, ?, 0, '{STAMP}')",
                rows,
            )
            cur.executemany(
                f"INSERT INTO changes (image_id, kind, at) VALUES (?, 'added', '{STAMP}')",
                [(i,) for i in ids.tolist()],
            )
            vecs = next(chunks)
            if vecs is not None:
                cur.executemany(
                    "INSERT INTO embeddings (model_id, content_hash, vector, created_at)"
                    f" VALUES (1, ?, ?, '{STAMP}')",
                    [
                        (f"{i:064x}", vecs[j].tobytes())
                        for j, i in enumerate(ids.tolist())
                        if status[j] != "failed"
                    ],
                )
            tagged = ids[rng.random(m) < 0.02]
            tag_rows = {
                (int(i), int(t) + 1)
                for i in tagged
                for t in rng.choice(TAGS, int(rng.integers(1, 3)), p=tag_p)
            }
            cur.executemany(
                "INSERT INTO image_tags (image_id, tag_id, state, score, updated_at)"
                f" VALUES (?, ?, 'accepted', NULL, '{STAMP}')",
                sorted(tag_rows),
            )
            raw.commit()
            if start // CHUNK % 20 == 0:
                print(f"  catalog: {start + m:,} of {n:,} rows", flush=True)
    finally:
        raw.close()


def ground_truth_vectors(n: int):
    """The catalog's vectors again, chunk by chunk (same seed), for exact answers without SQLite."""
    return ClipLike(n, IDENTITY.dim, seed=n).chunks(CHUNK)
