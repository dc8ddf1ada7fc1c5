"""bench.scale's 10M sections: the catalog's queries (metadata, filters, facets, catch-up, browse),
before and after migration 0002's rewrites, and the on-disk vector index built from the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bench import scale_catalog
from bench.clip_like import ClipLike
from bench.report import Report
from bench.scale import exact_top, files_mib, ok_ids, rss_mib, timed_search
from indexer.catalog import filters, open_catalog
from indexer.catalog.filters import Filters
from indexer.catalog.schema import Image
from indexer.vectors import VectorIndex


def _timed(fn, runs: int = 3) -> tuple[float, float, object]:
    """(first call s, median of the rest s, result)"""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    rest = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        rest.append(time.perf_counter() - t)
    return first, float(np.median(rest)) if rest else first, out


def bench_catalog(report: Report, n: int) -> None:
    data_dir, facts = scale_catalog.build(n)
    sec = "catalog"
    report.add(
        sec,
        f"synthetic catalog written, {n:,} images (at revision 0001)",
        facts["fill_s"],
        "s",
        f"{facts['bytes'] / 2**30:.1f} GiB with vectors after migration",
    )
    report.add(
        sec,
        f"migration 0002 over {n:,} images",
        facts["migrate_s"],
        "s",
        "5 indexes + the folders table backfilled, one transaction",
    )
    catalog = open_catalog(data_dir)
    oks = ok_ids(catalog)
    rng = np.random.default_rng(3)
    some = rng.choice(oks, 1000, replace=False).tolist()
    first, med, _ = _timed(lambda: catalog.images_by_ids(some), runs=5)
    report.add(
        sec,
        "metadata of 1,000 results (images_by_ids)",
        med * 1000,
        "ms",
        f"first call {first * 1000:.0f} ms",
    )
    cases = {
        "folder, a month (~1/480 of the library)": Filters(folder="/archive/1/2016/05"),
        "folder, a year (~1/23)": Filters(folder="/archive/1/2016"),
        "date range, a month": Filters(date_from=date(2016, 5, 1), date_to=date(2016, 5, 31)),
        "date range, a year": Filters(date_from=date(2016, 1, 1), date_to=date(2016, 12, 31)),
        "camera, the most common": Filters(camera=scale_catalog.CAMERAS[0]),
        "camera, a rare one": Filters(camera=scale_catalog.CAMERAS[-1]),
        "tag, the most common": Filters(tags=("tag000",)),
        "tag, a rare one": Filters(tags=("tag299",)),
        "camera + a year": Filters(
            camera=scale_catalog.CAMERAS[3], date_from=date(2016, 1, 1), date_to=date(2016, 12, 31)
        ),
    }
    for what, f in cases.items():
        first, med, ids = _timed(lambda f=f: filters.allowed_ids(catalog, f), runs=2)
        report.add(
            sec,
            f"filter ids: {what}",
            med * 1000,
            "ms",
            f"{len(ids):,} ids; first call {first * 1000:.0f} ms",
        )
    first, med, got = _timed(lambda: filters.facets(catalog), runs=3)
    report.add(
        sec,
        "facets (folders, cameras, types, tags, dates, count)",
        med * 1000,
        "ms",
        f"first call {first * 1000:.0f} ms; {len(got['folders'])} folders, {got['count']:,} photos",
    )
    # The same answers the way they were computed before migration 0002 (one run each)
    t = time.perf_counter()
    with catalog.session() as s:
        old = Counter(os.path.dirname(p) for p in s.scalars(select(Image.path).where(Image.status == "ok")))
    report.add(
        sec,
        "facets' folder list as before (every path's dirname in Python)",
        time.perf_counter() - t,
        "s",
        f"same folders: {sorted(old) == got['folders']}",
    )
    for what, clause in (
        (
            "date range, a month, as before (taken_date() compared as text)",
            [filters.taken_date() >= "2016-05-01", filters.taken_date() <= "2016-05-31"],
        ),
        (
            "folder, a month, as before (LIKE prefix%)",
            [Image.path.startswith("/archive/1/2016/05/", autoescape=True)],
        ),
    ):
        t = time.perf_counter()
        with catalog.session() as s:
            count = len(s.scalars(select(Image.id).where(Image.status == "ok", *clause)).all())
        report.add(sec, f"filter ids: {what}", (time.perf_counter() - t) * 1000, "ms", f"{count:,} ids")
    # Catch-up: what a reader does every half second, and a batch of 64 changes
    last = catalog.last_seq()
    first, med, _ = _timed(catalog.last_seq, runs=20)
    report.add(
        sec, "last_seq() (searchd's check, every 0.5 s)", med * 1000, "ms", f"{last:,} changes in the table"
    )
    first, med, (seq, changed) = _timed(lambda: catalog.changes_since(last - 64), runs=5)
    report.add(sec, "changes_since(): a batch of 64 changes", med * 1000, "ms", "")
    first, med, _ = _timed(lambda: catalog.searchable_vectors(1, sorted(i for i in changed if i)), runs=5)
    report.add(
        sec, "their 64 vectors (searchable_vectors)", med * 1000, "ms", f"first call {first * 1000:.1f} ms"
    )
    first, med, rows = _timed(lambda: filters.newest(catalog, Filters(), 40, 0), runs=1)
    report.add(
        sec,
        "browse: newest 40 photos, no filter",
        med * 1000,
        "ms",
        f"first call {first * 1000:.0f} ms; ORDER BY taken_datetime() sorts every OK row",
    )
    catalog.close()


# -- the on-disk index --------------------------------------------------------------------------------
def build_in_child(data_dir: Path, ondisk_above: int, above: int) -> dict:
    """Build (or rebuild) the index in a fresh process: its peak RSS is the build's alone."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale_queries", "build", str(data_dir), str(ondisk_above), str(above)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _build(data_dir: Path, ondisk_above: int, above: int) -> None:
    import resource

    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    vdir = data_dir / "vectors"
    import shutil

    shutil.rmtree(vdir, ignore_errors=True)
    catalog = open_catalog(data_dir)
    started = time.perf_counter()
    vi = VectorIndex.open(catalog, vdir, scale_catalog.IDENTITY, above, ondisk_above)
    seconds = time.perf_counter() - started
    lay = vi.layered
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "kind": vi.kind,
                "nlist": lay.nlist,
                "nprobe": lay.nprobe,
                "stem": lay.base.stem,
                "count": len(vi),
            }
        )
    )


def bench_ondisk(report: Report, n: int, queries: int, ondisk_above: int, above: int) -> None:
    data_dir, _ = scale_catalog.build(n)
    sec = "ondisk"
    built = build_in_child(data_dir, ondisk_above, above)
    label = f"{built['kind']}, {n:,} x 512"
    vdir = data_dir / "vectors"
    report.add(
        sec,
        f"build from the catalog ({label})",
        built["seconds"],
        "s",
        f"{os.cpu_count()} threads; {built['nlist']} lists (HNSW quantizer), 8-bit codes (SQ8)",
    )
    report.add(
        sec,
        f"peak RSS of the building process ({label})",
        built["peak_rss_mib"],
        "MiB",
        "python + catalog reads + training sample + one shard",
    )
    report.add(sec, f"base files on disk ({label})", files_mib(vdir, built["stem"]), "MiB", "")
    catalog = open_catalog(data_dir)
    before = rss_mib()
    t = time.perf_counter()
    vi = VectorIndex.open(catalog, vdir, scale_catalog.IDENTITY, above, ondisk_above)
    report.add(sec, f"saved index opened ({label})", time.perf_counter() - t, "s", "checksums included")
    report.add(
        sec,
        f"RSS added by the open index ({label})",
        rss_mib() - before,
        "MiB",
        "centroids, HNSW quantizer, SQ ranges; the lists are mapped (page cache)",
    )
    world = ClipLike(n, 512, seed=n)
    qs = world.text_queries(queries, seed=7)
    exact = exact_top(n, qs, ok_ids(catalog))
    for p in vdir.glob(f"{built['stem']}.*"):
        with open(p, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    recall, p50, p99 = timed_search(vi, qs, exact)
    note = f"{queries} text-like queries, 1 thread, {vi.layered.nprobe} of {vi.layered.nlist} lists probed"
    report.add(sec, f"recall@10 vs exact ({label})", recall, "", note)
    report.add(
        sec, f"search p50, lists evicted from the page cache first ({label})", p50, "ms", f"p99 {p99:.1f} ms"
    )
    recall, p50, p99 = timed_search(vi, qs, exact)
    report.add(sec, f"search p50, second pass ({label})", p50, "ms", f"p99 {p99:.1f} ms")
    report.add(
        sec,
        f"RSS after {2 * queries} queries ({label})",
        rss_mib() - before,
        "MiB",
        "above the process before opening",
    )
    lay, chosen = vi.layered, vi.layered.nprobe
    for nprobe in (chosen // 4, chosen // 2, chosen * 2):  # the probe count's trade-off at this size
        lay.nprobe = nprobe
        recall, p50, p99 = timed_search(vi, qs, exact)
        note = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        report.add(sec, f"recall@10 with {nprobe} lists probed ({label})", recall, "", note)
    lay.nprobe = chosen
    allowed = np.sort(np.random.default_rng(4).choice(ok_ids(catalog), 1500, replace=False))
    want = exact_top(n, qs[:20], allowed)
    recall, p50, p99 = timed_search(vi, qs[:20], want, allowed)
    report.add(
        sec,
        f"filter allowing 1,500 ids ({label})",
        p50,
        "ms",
        f"exact among them (codes read id by id): recall {recall:.3f}",
    )
    month = filters.allowed_ids(catalog, Filters(folder="/archive/1/2016/05"))
    want = exact_top(n, qs[:20], month)
    recall, p50, p99 = timed_search(vi, qs[:20], want, month)
    report.add(
        sec, f"filter: a month's folder, {len(month):,} ids ({label})", p50, "ms", f"recall@10 {recall:.3f}"
    )
    vi.close()
    catalog.close()


if __name__ == "__main__":
    if sys.argv[1] == "build":
        _build(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
