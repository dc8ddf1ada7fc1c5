"""Recall@10 against exact search, and single-query latency, of IVF variants over a probe sweep
(`python -m bench.ivf_sweep --n 1000000`), or of HNSW over an efSearch sweep (`--hnsw 32`).
The vectors are bench.catalogs' clustered synthetic set, as
in bench.run's vector figures. Prints a table (markdown) for bench/RESULTS.md."""

from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np

from bench.catalogs import clustered_unit_vectors, mixed_queries
from bench.query import timed_recall


def sweep(index: faiss.Index, qs: np.ndarray, exact: np.ndarray, probes: list[int]) -> list[tuple]:
    rows = []
    for nprobe in probes:
        faiss.extract_index_ivf(index).nprobe = nprobe
        rows.append((nprobe, *timed_recall(index, qs, exact)))
    return rows


def hnsw_sweep(vectors: np.ndarray, qs: np.ndarray, exact: np.ndarray, m: int, efs: list[int]) -> None:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(vectors)
    built = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    print(
        f"\n{len(vectors):,} x {vectors.shape[1]}, HNSW M={m}, efConstruction 80, "
        f"built in {built:.0f} s ({os.cpu_count()} threads)\n"
    )
    print("| index | efSearch | recall@10 | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for ef in efs:
        index.hnsw.efSearch = ef
        recall, p50, p99 = timed_recall(index, qs, exact)
        print(f"| HNSW M={m} | {ef} | {recall:.3f} | {p50:.1f} | {p99:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--probes", default="50,100,200,400")
    ap.add_argument("--hnsw", type=int, default=0, help="HNSW with this M instead of the IVF variants")
    ap.add_argument("--ef", default="64,128,256,512", help="HNSW efSearch values")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)  # searchd's setting: one query at a time, one thread
    probes = [int(p) for p in args.probes.split(",")]
    vectors = clustered_unit_vectors(args.n, args.dim, seed=args.n)
    qs = mixed_queries(vectors, args.queries, seed=7)
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(vectors)
    _, exact = flat.search(qs, 10)
    if args.hnsw:
        hnsw_sweep(vectors, qs, exact, args.hnsw, [int(e) for e in args.ef.split(",")])
        return
    nlist = round(args.n**0.5)
    quantizer = faiss.IndexFlatIP(args.dim)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    ivf = faiss.IndexIVFFlat(quantizer, args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    ivf.train(vectors[rng.choice(args.n, min(args.n, 64 * nlist), replace=False)])
    ivf.add(vectors)
    built = time.perf_counter() - started
    sq8 = faiss.IndexIVFScalarQuantizer(
        quantizer, args.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sq8.train(vectors[:100_000])
    refined = faiss.IndexRefineFlat(sq8)  # SQ8 scan, then exact scores for the best k * k_factor
    refined.add(vectors)
    refined.k_factor = 4
    faiss.omp_set_num_threads(1)
    print(
        f"\n{args.n:,} x {args.dim}, {nlist} lists (IVF-Flat built in {built:.0f} s), "
        f"{args.queries} mixed queries, 1 thread\n"
    )
    print("| index | lists probed | recall@10 | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for label, index in (("IVF-Flat", ivf), ("IVF-SQ8 + exact re-rank of 40", refined)):
        for nprobe, recall, p50, p99 in sweep(index, qs, exact, probes):
            print(f"| {label} | {nprobe} | {recall:.3f} | {p50:.1f} | {p99:.1f} |", flush=True)


if __name__ == "__main__":
    main()
