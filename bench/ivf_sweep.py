"""Recall@10 against exact search, single-query latency and build time of approximate index candidates
over a sweep of their search knob, at 1M vectors (issue 15's 1M target).

    python -m bench.ivf_sweep --n 1000000 --data clip --index ivf-fp16 --nlist 4096 --probes 8,16,32,64
    python -m bench.ivf_sweep --n 1000000 --data clip --index hnsw --hnsw 32 --ef 32,64,128,256
    python -m bench.ivf_sweep --n 1000000 --data hard --index ivf-flat --nlist 1000   # the 2026-11-22 sweep

--data clip: bench.clip_like (CLIP-shaped vectors, text-like queries); --data hard: bench.catalogs'
isotropic clusters with queries between two stored vectors (pessimistic). Builds use every core
(2 here), searches one thread and one query at a time, as searchd does. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import faiss
import numpy as np

from bench.catalogs import clustered_unit_vectors, mixed_queries
from bench.clip_like import ClipLike
from bench.query import timed_recall

INDEXES = ("ivf-flat", "ivf-fp16", "ivf-sq8-refine", "ivf-pq-refine", "hnsw")


def dataset(kind: str, n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "clip":
        world = ClipLike(n, dim, seed=n)
        return world.vectors(), world.text_queries(queries, seed=7)
    vectors = clustered_unit_vectors(n, dim, seed=n)
    return vectors, mixed_queries(vectors, queries, seed=7)


def train_sample(vectors: np.ndarray, nlist: int, per_list: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    m = min(len(vectors), per_list * nlist)
    return vectors[np.sort(rng.choice(len(vectors), m, replace=False))]


def build(args, vectors: np.ndarray) -> tuple[faiss.Index, str]:
    """The candidate index, trained and filled with every vector; returns (index, label)."""
    dim = vectors.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    if args.index == "hnsw":
        storage = {"flat": "Flat", "fp16": "SQfp16", "sq8": "SQ8"}[args.hnsw_storage]
        index = faiss.index_factory(dim, f"HNSW{args.hnsw},{storage}", ip)
        index.hnsw.efConstruction = args.ef_construction
        if args.hnsw_storage != "flat":
            index.train(vectors[:50_000])
        index.add(vectors)
        return index, f"HNSW{args.hnsw},{storage} efConstruction {args.ef_construction}"
    quantizer = faiss.IndexHNSWFlat(dim, 32, ip) if args.quantizer == "hnsw" else faiss.IndexFlatIP(dim)
    if args.index == "ivf-flat":
        ivf = faiss.IndexIVFFlat(quantizer, dim, args.nlist, ip)
    elif args.index in ("ivf-fp16", "ivf-sq8-refine"):
        qt = faiss.ScalarQuantizer.QT_fp16 if args.index == "ivf-fp16" else faiss.ScalarQuantizer.QT_8bit
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, args.nlist, qt, ip, False)
    else:
        ivf = faiss.IndexIVFPQ(quantizer, dim, args.nlist, args.pq, 8, ip)
    ivf.cp.niter = 10
    ivf.train(train_sample(vectors, args.nlist))
    index = ivf
    if args.index.endswith("refine"):  # exact re-rank of the best k * k_factor from fp16 copies
        index = faiss.IndexRefine(ivf, faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, ip))
        index.k_factor = args.k_factor
    index.add(vectors)
    label = f"{args.index} {args.nlist} lists ({args.quantizer} quantizer)"
    if args.index == "ivf-pq-refine":
        label += f", PQ{args.pq}"
    if args.index.endswith("refine"):
        label += f", re-rank {10 * args.k_factor}"
    return index, label


def set_knob(index: faiss.Index, args, value: int) -> None:
    if args.index == "hnsw":
        index.hnsw.efSearch = value
    else:
        faiss.extract_index_ivf(index).nprobe = value
        ivf = faiss.extract_index_ivf(index)
        if args.quantizer == "hnsw":
            faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(64, 2 * value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=("clip", "hard"), default="clip")
    ap.add_argument("--index", choices=INDEXES, default="ivf-fp16")
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--quantizer", choices=("flat", "hnsw"), default="flat")
    ap.add_argument("--pq", type=int, default=64, help="PQ sub-quantizers (bytes per vector)")
    ap.add_argument("--k-factor", type=int, default=10, help="re-rank the best 10 * this exactly")
    ap.add_argument("--probes", default="8,16,32,64,128")
    ap.add_argument("--hnsw", type=int, default=32, help="HNSW M")
    ap.add_argument("--hnsw-storage", choices=("flat", "fp16", "sq8"), default="flat")
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ef", default="32,64,128,256,512", help="HNSW efSearch values")
    args = ap.parse_args()
    if args.index == "hnsw" and args.probes == ap.get_default("probes"):
        args.probes = args.ef
    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    vectors, qs = dataset(args.data, args.n, args.dim, args.queries)
    _, exact = faiss.knn(qs, vectors, 10, faiss.METRIC_INNER_PRODUCT)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    index, label = build(args, vectors)
    built = time.perf_counter() - started
    faiss.omp_set_num_threads(1)  # searchd's setting: one query at a time, one thread
    del vectors
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{args.n:,} x {args.dim} ({args.data}), {label}: built in {built:.0f} s on {threads} threads "
        f"(load {load:.1f} at start); peak RSS of the process {rss:.0f} MiB; "
        f"{len(qs)} queries, 1 thread\n"
    )
    knob = "efSearch" if args.index == "hnsw" else "lists probed"
    print(f"| index | {knob} | recall@10 | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for value in (int(p) for p in args.probes.split(",")):
        set_knob(index, args, value)
        recall, p50, p99 = timed_recall(index, qs, exact)
        print(f"| {label} | {value} | {recall:.3f} | {p50:.2f} | {p99:.2f} |", flush=True)


if __name__ == "__main__":
    main()
