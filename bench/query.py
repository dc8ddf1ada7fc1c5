"""Query latency: the vector index alone (exact and approximate, with recall), the Searcher, searchd
over HTTP on loopback, the CLI (a new process per query), and searchd's start-up to a first answer.

Catalogs are synthetic (bench.catalogs): N image rows with clustered unit vectors, no files. They are
cached under /tmp/photoseek-bench/catalogs with their vector index saved, as `photoseek index` leaves
a library. Text queries are distinct unless a figure says "repeated" (the Searcher caches vectors of
recent texts, which is what a person refining a query mostly hits).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from bench.catalogs import clustered_unit_vectors, mixed_queries, synthesize_catalog
from bench.corpus import CACHE
from bench.report import Report
from indexer.catalog import open_catalog
from indexer.encoder import Encoder
from indexer.library import Library
from indexer.query import parse_query
from indexer.settings import Settings
from indexer.vectors import VectorIndex

CATALOGS = CACHE / "catalogs"
CATALOG_VERSION = 1
WORDS = [
    "kids",
    "dog",
    "cat",
    "beach",
    "sunset",
    "mountain",
    "lake",
    "city",
    "night",
    "snow",
    "forest",
    "birthday",
    "cake",
    "car",
    "bicycle",
    "river",
    "bridge",
    "garden",
    "flowers",
    "red",
    "blue",
    "old",
    "young",
    "smiling",
    "running",
    "sleeping",
    "wedding",
    "concert",
    "street",
    "market",
]


def text_queries(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(2, 6)))) + f" {i}" for i in range(n)]


def ms_percentiles(seconds: list[float]) -> tuple[float, float]:
    a = np.asarray(seconds) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def timed_recall(index, qs: np.ndarray, exact: np.ndarray) -> tuple[float, float, float]:
    """(recall@10 against `exact`, p50 ms, p99 ms) of `index` answering qs one query at a time."""
    times, found = [], []
    for q in qs:
        t = time.perf_counter()
        _, ids = index.search(q[None], 10)
        times.append(time.perf_counter() - t)
        found.append(ids[0])
    recall = np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)])
    return float(recall), *ms_percentiles(times)


def catalog_for(n: int, encoder: Encoder, approximate_above: int) -> Path:
    """A data dir with n synthetic images of `encoder`'s model and its vector index saved."""
    ident = encoder.identity
    data_dir = CATALOGS / f"{ident.key}-{n}-v{CATALOG_VERSION}"
    done = data_dir / "bench-catalog.json"
    if done.exists():
        return data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    started = time.perf_counter()
    vectors = clustered_unit_vectors(n, ident.dim, seed=n)
    catalog = synthesize_catalog(data_dir, ident, vectors)
    catalog.remember_spec(catalog.model_id(ident), str(encoder.spec))
    del vectors
    settings = Settings(data_dir=data_dir, approximate_above=approximate_above)
    VectorIndex.open(catalog, settings.layout.vectors, ident, approximate_above).save(settings.layout.vectors)
    catalog.close()
    done.write_text(json.dumps({"n": n, "seconds": time.perf_counter() - started}))
    return data_dir


# -- the vector index alone -------------------------------------------------------------------------
def bench_index(report: Report, n: int, data_dir: Path, encoder: Encoder, queries: int) -> None:
    """Exact vs approximate (IVF) on the same catalog: build time, single-query latency, recall@10."""
    catalog = open_catalog(data_dir)
    ident = encoder.identity
    stored_ids, stored = catalog.searchable_vectors(catalog.model_id(ident))
    qs = mixed_queries(stored, queries, seed=7)
    del stored_ids, stored
    results: dict[str, list[list[int]]] = {}
    for kind, above in (("exact (flat)", 0), ("approximate (IVF)", 1)):
        scratch = CACHE / "scratch-vectors"
        shutil.rmtree(scratch, ignore_errors=True)
        started = time.perf_counter()
        vi = VectorIndex.open(catalog, scratch, ident, above)
        report.add(
            "vector index",
            f"{kind} build from the catalog, {n:,} vectors",
            time.perf_counter() - started,
            "s",
        )
        times, found = [], []
        for q in qs:
            t = time.perf_counter()
            _, ids = vi.search(q, 10)
            times.append(time.perf_counter() - t)
            found.append(ids.tolist())
        p50, p99 = ms_percentiles(times)
        note = f"{len(qs)} queries, top 10"
        if vi.layered is not None:  # the ivf and ondisk kinds (indexer/vectors_ivf.py)
            note += f"; {vi.layered.nlist} lists, {vi.layered.nprobe} probed"
        report.add("vector index", f"{kind} search p50, {n:,} vectors", p50, "ms", note)
        report.add("vector index", f"{kind} search p99, {n:,} vectors", p99, "ms", note)
        results[kind] = found
        del vi
    exact, approx = results["exact (flat)"], results["approximate (IVF)"]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    report.add(
        "vector index",
        f"IVF recall@10 vs exact, {n:,} vectors",
        recall,
        "",
        "clustered synthetic, mixed queries",
    )
    catalog.close()


# -- the Searcher, searchd over HTTP, the CLI ------------------------------------------------------
def bench_searcher(report: Report, n: int, settings: Settings, encoder: Encoder, queries: int) -> None:
    library = Library.open(settings)
    library.models.put(library.clip_key, encoder)
    searcher = library.searcher()
    kind = searcher.vectors.kind
    texts = text_queries(queries + 3, seed=n)
    for t in texts[:3]:
        searcher.search(parse_query(t), limit=40)  # warm
    encode, total = [], []
    for t in texts[3:]:
        t0 = time.perf_counter()
        searcher.text_vector(t)
        t1 = time.perf_counter()
        searcher.search(parse_query(t), limit=40)  # the vector now comes from the cache
        t2 = time.perf_counter()
        encode.append(t1 - t0)
        total.append(t2 - t0)
    p50, p99 = ms_percentiles(encode)
    threads = torch.get_num_threads()
    report.add(
        "query",
        f"text tower alone (one distinct query, {threads} torch threads) p50",
        p50,
        "ms",
        f"p99 {p99:.1f} ms",
    )
    if threads > 1:  # small matrices: more threads can cost more than they give, on a busy machine most
        torch.set_num_threads(1)
        try:
            one = [_timed(searcher.text_vector, t + " again") for t in texts[3:]]
        finally:
            torch.set_num_threads(threads)
        p50, p99 = ms_percentiles(one)
        report.add(
            "query",
            "text tower alone (one distinct query, 1 torch thread) p50",
            p50,
            "ms",
            f"p99 {p99:.1f} ms",
        )
    p50, p99 = ms_percentiles(total)
    report.add("query", f"Searcher, distinct text, {n:,} images, {kind} p50", p50, "ms", f"p99 {p99:.1f} ms")
    library.catalog.close()


def _timed(fn: Callable, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def serve_in_thread(settings: Settings, encoder: Encoder) -> tuple[int, Callable[[], None]]:
    """searchd's app under waitress on a free loopback port; returns (port, stop)."""
    from searchd.app import create_app
    from searchd.serve import create_server

    library = Library.open(settings)
    library.models.put(library.clip_key, encoder)
    app = create_app(library)
    server = create_server(app, settings, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server.effective_port, server.close


def http_get(conn: http.client.HTTPConnection, text: str) -> dict:
    conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": text}))
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"searchd answered {resp.status}: {body[:300]!r}")
    return json.loads(body)


def bench_http(report: Report, n: int, settings: Settings, queries: int) -> None:
    """Text queries over HTTP to `photoseek serve` in its own process, as deployed: distinct texts
    (each runs the text tower) and one repeated text (its vector cached)."""
    env = {**os.environ, "PHOTOSEEK_APPROXIMATE_ABOVE": str(settings.approximate_above)}
    with serve_process(settings.data_dir, env) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        texts = text_queries(queries + 3, seed=n + 1)
        for t in texts[:3]:
            http_get(conn, t)
        times, got = [], 0
        for t in texts[3:]:
            t0 = time.perf_counter()
            got += len(http_get(conn, t)["results"])
            times.append(time.perf_counter() - t0)
        kind = "exact" if n <= settings.approximate_above or settings.approximate_above <= 0 else "IVF"
        p50, p99 = ms_percentiles(times)
        note = (
            f"p99 {p99:.1f} ms; {queries} queries, 40 results each ({got} in all); searchd in its own process"
        )
        report.add("query", f"searchd HTTP, distinct text, {n:,} images, {kind} p50", p50, "ms", note)
        times = []
        for _ in range(queries):
            t0 = time.perf_counter()
            http_get(conn, texts[3])
            times.append(time.perf_counter() - t0)
        p50, p99 = ms_percentiles(times)
        report.add(
            "query", f"searchd HTTP, repeated text, {n:,} images, {kind} p50", p50, "ms", f"p99 {p99:.1f} ms"
        )
        conn.close()


@contextlib.contextmanager
def serve_process(data_dir: Path, env: dict | None = None) -> Iterator[int]:
    """`photoseek serve` on a free loopback port, up and answering; yields the port."""
    port = free_port()
    cmd = [*cli_base(data_dir), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {proc.stderr.read().decode()[-1500:]}")
            try:
                http_get(http.client.HTTPConnection("127.0.0.1", port, timeout=60), "a first question")
                break
            except (ConnectionError, OSError):
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def cli_base(data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "searchd.cli", "--data-dir", str(data_dir), "-q"]


def bench_cli(report: Report, n: int, data_dir: Path, runs: int) -> None:
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [*cli_base(data_dir), "search", f"a dog on a beach {i}", "-n", "10"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
    report.add(
        "query",
        f"CLI `photoseek search`, {n:,} images (new process)",
        float(np.median(times)),
        "s",
        f"median of {runs}; includes python start-up, model load and index load",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_startup(report: Report, n: int, data_dir: Path, cold: bool) -> None:
    """`photoseek serve` launched to its first search answer; cold: no saved vector index."""
    vectors = data_dir / "vectors"
    backup = data_dir / "vectors.saved"
    if cold:
        vectors.rename(backup)
    t0 = time.perf_counter()
    try:
        with serve_process(data_dir):
            elapsed = time.perf_counter() - t0
    finally:
        if cold:
            shutil.rmtree(vectors, ignore_errors=True)
            backup.rename(vectors)
    what = "no saved vector index (rebuilt from the catalog)" if cold else "saved vector index"
    report.add("start-up", f"searchd start to first answer, {n:,} images, {what}", elapsed, "s")


def bench_index_in_memory(report: Report, n: int, dim: int, queries: int) -> None:
    """The approximate index against exact search on n in-memory vectors, without a catalog: the
    same index construction as VectorIndex's ivf kind (indexer.vectors_ivf), minus the SQLite read."""
    import faiss

    from indexer import vectors_ivf

    vectors = clustered_unit_vectors(n, dim, seed=n)
    qs = mixed_queries(vectors, queries, seed=7)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    _, exact = flat.search(qs, 10)  # batched: the ground truth, not a latency figure
    del flat
    started = time.perf_counter()
    nlist = vectors_ivf.lists_for(n)
    sample = vectors[np.random.default_rng(0).choice(n, min(n, vectors_ivf.TRAIN_MAX), replace=False)]
    ivf = vectors_ivf.clone_empty(vectors_ivf.train_template(sample, vectors_ivf.IVF, nlist))
    ivf.add_with_ids(vectors, np.arange(n, dtype=np.int64))
    ivf.nprobe = vectors_ivf.probes_for(n, ivf.nlist)
    report.add(
        "vector index",
        f"IVF build in memory, {n:,} x {dim}",
        time.perf_counter() - started,
        "s",
        f"{ivf.nlist} lists, {ivf.nprobe} probed",
    )
    recall, p50, p99 = timed_recall(ivf, qs, exact)
    report.add("vector index", f"IVF search p50, {n:,} vectors in memory", p50, "ms", f"p99 {p99:.1f} ms")
    report.add(
        "vector index",
        f"IVF recall@10 vs exact, {n:,} vectors in memory",
        recall,
        "",
        f"{queries} mixed queries, clustered synthetic",
    )
