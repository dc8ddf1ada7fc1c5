"""Issue 15's figures: the approximate index at 1M, the on-disk index and the catalog at 10M, start-up.

    python -m bench.scale --only index --n 1000000      # build, recall@10, p50, filters, changes
    python -m bench.scale --only startup --n 1000000    # a saved index opened, warm and cold
    python -m bench.scale --only catalog --n 10000000   # metadata, filters, facets, catch-up
    python -m bench.scale --only ondisk --n 10000000    # the on-disk kind built from the catalog

Catalogs come from bench.scale_catalog (cached under /tmp/photoseek-bench/catalogs). Ground truth is
exact search over the same vectors. Searches run one query at a time on one thread, as searchd does;
builds use every core. Each run appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import psutil

from bench import machine, scale_catalog
from bench.clip_like import ClipLike
from bench.query import ms_percentiles
from bench.report import Report
from indexer.catalog import open_catalog
from indexer.vectors import DEFAULT_APPROXIMATE_ABOVE, VectorIndex

SECTIONS = ("index", "startup", "catalog", "ondisk")


class PeakRSS:
    """Samples this process's RSS in a thread (ru_maxrss would include earlier phases)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def exact_top(n: int, queries: np.ndarray, ok_ids: np.ndarray, k: int = 10) -> np.ndarray:
    """Exact top-k catalog ids per query over the catalog's vectors (regenerated, not read back)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    start = 0
    for vecs in scale_catalog.ground_truth_vectors(n):
        ids = np.arange(start + 1, start + len(vecs) + 1)
        start += len(vecs)
        keep = np.isin(ids, ok_ids)
        if not keep.any():
            continue
        s, i = faiss.knn(queries, vecs[keep], k, faiss.METRIC_INNER_PRODUCT)
        s[i < 0] = -np.inf  # fewer than k allowed in this chunk
        both_s = np.concatenate([best_s, s], axis=1)
        both_i = np.concatenate([best_i, ids[keep][np.maximum(i, 0)]], axis=1)
        order = np.argsort(-both_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(both_s, order, 1), np.take_along_axis(both_i, order, 1)
    return best_i


def timed_search(vi: VectorIndex, qs: np.ndarray, exact: np.ndarray | None, allowed=None):
    times, hits = [], 0
    for j, q in enumerate(qs):
        t = time.perf_counter()
        _, ids = vi.search(q, 10, allowed)
        times.append(time.perf_counter() - t)
        if exact is not None:
            hits += len(set(ids.tolist()) & set(exact[j].tolist()))
    p50, p99 = ms_percentiles(times)
    return (hits / (10 * len(qs)) if exact is not None else None), p50, p99


def ok_ids(catalog) -> np.ndarray:
    with catalog.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id FROM images WHERE status = 'ok'").all()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def files_mib(directory: Path, stem: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(f"{stem}.*")) / 2**20


# -- the approximate index at 1M --------------------------------------------------------------------
def bench_index(report: Report, n: int, queries: int, ondisk_above: int, above: int) -> None:
    data_dir, facts = scale_catalog.build(n)
    catalog = open_catalog(data_dir)
    ident = scale_catalog.IDENTITY
    vdir = data_dir / "vectors"
    shutil.rmtree(vdir, ignore_errors=True)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    with PeakRSS() as peak:
        started = time.perf_counter()
        vi = VectorIndex.open(catalog, vdir, ident, above, ondisk_above)
        built = time.perf_counter() - started
    lay = vi.layered
    kind = vi.kind
    label = f"{kind}, {n:,} x 512"
    report.add(
        "index",
        f"build from the catalog ({label})",
        built,
        "s",
        f"{os.cpu_count()} threads; {lay.nlist} lists",
    )
    report.add("index", f"peak RSS while building ({label})", peak.peak / 2**20, "MiB", "the bench process")
    report.add(
        "index", f"base files ({label})", files_mib(vdir, lay.base.stem), "MiB", "lists + ids + header"
    )
    world = ClipLike(n, ident.dim, seed=n)
    qs = world.text_queries(queries, seed=7)
    oks = ok_ids(catalog)
    exact = exact_top(n, qs, oks)
    recall, p50, p99 = timed_search(vi, qs, exact)
    note = f"{queries} text-like queries, 1 thread; {lay.nprobe} of {lay.nlist} lists probed"
    report.add("index", f"recall@10 vs exact ({label})", recall, "", note)
    report.add("index", f"search p50 ({label})", p50, "ms", f"p99 {p99:.2f} ms")
    chosen = lay.nprobe
    for nprobe in (chosen // 2, chosen * 3 // 2):  # the probe count's trade-off
        lay.nprobe = nprobe
        recall, p50, p99 = timed_search(vi, qs, exact)
        report.add(
            "index", f"recall@10 with {nprobe} lists probed ({label})", recall, "", f"p50 {p50:.2f} ms"
        )
    lay.nprobe = chosen
    # Filters: exact among few ids, more lists probed the fewer pass
    rng = np.random.default_rng(1)
    for share in (0.01, 0.1, 0.5):
        allowed = np.sort(rng.choice(oks, int(share * len(oks)), replace=False))
        sub = qs[:50]
        want = _exact_among(n, sub, allowed)
        recall, p50, p99 = timed_search(vi, sub, want, allowed)
        report.add(
            "index",
            f"filtered search, {share:.0%} of the library allowed ({label})",
            p50,
            "ms",
            f"recall@10 {recall:.3f} vs exact among the allowed; p99 {p99:.1f} ms",
        )
    # Changes: 1 % of the library deleted, moved or re-embedded, applied by catch-up
    changed = rng.choice(oks, n // 100, replace=False)
    _edit(catalog, changed)
    started = time.perf_counter()
    vi.catch_up(catalog)
    report.add("index", f"catch-up of {len(changed):,} changes ({label})", time.perf_counter() - started, "s")
    oks = ok_ids(catalog)
    exact2 = _exact_after_edits(catalog, n, qs, oks)
    recall, p50, _ = timed_search(vi, qs, exact2)
    report.add(
        "index",
        f"recall@10 after the changes ({label})",
        recall,
        "",
        f"delta {int(lay.delta.ntotal):,}, shadowed {len(lay.shadow.ids):,}; p50 {p50:.2f} ms",
    )
    started = time.perf_counter()
    vi.save(vdir)
    report.add(
        "index",
        f"save with a delta of {int(lay.delta.ntotal):,} ({label})",
        time.perf_counter() - started,
        "s",
    )
    started = time.perf_counter()
    vi.rebuild(catalog)  # what compaction costs
    report.add(
        "index", f"compaction: base rebuilt from the catalog ({label})", time.perf_counter() - started, "s"
    )
    recall, p50, _ = timed_search(vi, qs, exact2)
    report.add("index", f"recall@10 after compaction ({label})", recall, "", f"p50 {p50:.2f} ms")
    catalog.close()


def _exact_among(n: int, qs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    return exact_top(n, qs, allowed)


def _edit(catalog, ids: np.ndarray) -> None:
    """A third deleted, a third moved, a third re-embedded (new content, new vector)."""
    from indexer.catalog.schema import Change, Embedding, Image
    from indexer.catalog.store import utcnow

    rng = np.random.default_rng(2)
    run = os.urandom(4).hex()  # a cached catalog edited by an earlier run already has edit rows
    with catalog.session() as s:
        for j, image_id in enumerate(ids.tolist()):
            row = s.get(Image, image_id)
            kind = ("removed", "moved", "changed")[j % 3]
            if kind == "removed":
                row.status = "deleted"
            elif kind == "moved":
                row.path = row.path.replace("/IMG_", "/moved/IMG_")
            else:
                v = rng.standard_normal(512).astype(np.float32)
                row.content_hash = f"edit{run}{image_id:052x}"
                s.add(
                    Embedding(
                        model_id=1,
                        content_hash=row.content_hash,
                        vector=(v / np.linalg.norm(v)).tobytes(),
                        created_at=utcnow(),
                    )
                )
            s.add(Change(image_id=image_id, kind=kind, at=utcnow()))


def _exact_after_edits(catalog, n: int, qs: np.ndarray, oks: np.ndarray) -> np.ndarray:
    """Exact top 10 over the catalog as it is now: unchanged vectors regenerated, edited ones read."""
    from indexer.catalog.schema import Image

    with catalog.session() as s:
        edited = [
            r[0]
            for r in s.execute(
                Image.__table__.select().with_only_columns(Image.id).where(Image.content_hash.like("edit%"))
            )
        ]
    base = exact_top(n, qs, np.setdiff1d(oks, edited), k=10)
    eids, evecs = catalog.searchable_vectors(1, edited)
    out = []
    for j, q in enumerate(qs):
        ids, vecs = catalog.searchable_vectors(1, base[j].tolist())
        cand_ids = np.concatenate([ids, eids])
        scores = np.concatenate([vecs @ q, evecs @ q])
        out.append(cand_ids[np.argsort(-scores)[:10]])
    return np.array(out)


# -- start-up ---------------------------------------------------------------------------------------
def bench_startup(report: Report, n: int, ondisk_above: int, above: int) -> None:
    """VectorIndex.open of a saved index (what searchd does before its first answer), then a first
    query; cold: the base's pages evicted from the page cache first (posix_fadvise DONTNEED)."""
    data_dir, _ = scale_catalog.build(n)
    vdir = data_dir / "vectors"
    catalog = open_catalog(data_dir)
    ident = scale_catalog.IDENTITY
    vi = VectorIndex.open(catalog, vdir, ident, above, ondisk_above)
    vi.save(vdir)
    stem, kind = vi.layered.base.stem, vi.kind
    vi.close()
    q = ClipLike(n, ident.dim, seed=n).text_queries(3, seed=99)
    for cold in (False, True):
        if cold:
            for p in vdir.glob(f"{stem}.*"):
                with open(p, "rb") as f:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        before = rss_mib()
        started = time.perf_counter()
        vi = VectorIndex.open(catalog, vdir, ident, above, ondisk_above)
        opened = time.perf_counter() - started
        vi.search(q[0], 10)
        first = time.perf_counter() - started - opened
        what = "cold page cache" if cold else "warm page cache"
        report.add(
            "startup",
            f"saved {kind} index opened, {n:,} vectors ({what})",
            opened,
            "s",
            f"checksums of {files_mib(vdir, stem):.0f} MiB of base files included",
        )
        report.add("startup", f"first query after opening ({what})", first * 1000, "ms", "")
        report.add(
            "startup",
            f"RSS added by the open index ({what})",
            rss_mib() - before,
            "MiB",
            "anonymous memory; the mapped lists are page cache",
        )
        vi.close()
    catalog.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ondisk-above", type=int, default=5_000_000)
    ap.add_argument("--approximate-above", type=int, default=DEFAULT_APPROXIMATE_ABOVE, help="smoke tests")
    ap.add_argument("--no-markdown", action="store_true")
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(1)
    info = machine.describe()
    info["command"] = " ".join(["python", "-m", "bench.scale", *(argv if argv is not None else sys.argv[1:])])
    report = Report(info)
    started = time.perf_counter()
    if "index" in args.only:
        bench_index(report, args.n, args.queries, args.ondisk_above, args.approximate_above)
    if "startup" in args.only:
        bench_startup(report, args.n, args.ondisk_above, args.approximate_above)
    if "catalog" in args.only:
        from bench.scale_queries import bench_catalog

        bench_catalog(report, args.n)
    if "ondisk" in args.only:
        from bench.scale_queries import bench_ondisk

        bench_ondisk(report, args.n, args.queries, args.ondisk_above, args.approximate_above)
    report.add(
        "suite",
        "total run time",
        time.perf_counter() - started,
        "s",
        f"peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
    )
    path = report.save_json(f"{time.strftime('%Y%m%d-%H%M%S')}-scale")
    if not args.no_markdown:
        report.append_markdown(f"bench.scale --only {' '.join(args.only)} --n {args.n:,}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
