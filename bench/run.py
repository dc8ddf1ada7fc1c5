"""Run the benchmark suite: `python -m bench.run --device cpu|cuda [--quick] [--only SECTION ...]`.

Writes bench/out/<date>-<device>.json and appends a section to bench/RESULTS.md. --quick uses tiny
corpora and catalogs: a smoke test of the suite (a minute or two), not figures to quote.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass

from bench import machine
from bench.corpus import corpus, describe
from bench.report import Report

SECTIONS = ("decode", "indexing", "rss", "vector-memory", "vector-index", "query", "startup", "watch")
CPU_MODEL = "ViT-B-32-256:random"  # the CPU target
CUDA_MODEL = "ViT-B-32:random"


@dataclass(frozen=True)
class Plan:
    corpora: dict[str, int]  # corpus -> files
    model_only: int  # images per model-only reference
    catalog_sizes: tuple[int, ...]
    queries: int
    cli_runs: int
    batch_size: int
    worker_variants: tuple[int, ...]  # decoding processes tried on the 3 MP corpus
    watch_files: int
    memory_vectors: int = 1_000_000  # the in-memory recall/latency figure (no catalog)


def plan_for(device: str, quick: bool) -> Plan:
    cores = os.cpu_count() or 1
    if quick:
        return Plan({"12mp": 8, "3mp": 16, "0.3mp": 24}, 16, (2_000, 10_000), 10, 1, 8, (0, 1), 2, 20_000)
    if device == "cuda":
        return Plan(
            {"12mp": 1000, "3mp": 2000, "0.3mp": 20000}, 5000, (10_000, 100_000, 1_000_000), 200, 3, 256,
            (cores // 2, cores), 5,
        )  # fmt: skip
    # A 2-core CPU embeds ~5-10 img/s with ViT-B-32-256: these counts keep the suite near 15 minutes.
    return Plan(
        {"12mp": 48, "3mp": 128, "0.3mp": 128}, 32, (10_000, 100_000, 1_000_000), 100, 3, 64,
        (0, 1, cores), 3,
    )  # fmt: skip


def bench_encoder(model: str, device: str, runtime: str):
    """The encoder the suite measures: torch's, or the ONNX towers the library would run."""
    from indexer.encoder import load_encoder

    if runtime == "torch":
        return load_encoder(model, device)
    from indexer.library import onnx_folder
    from indexer.models import ModelCache
    from indexer.onnx_export import export
    from indexer.towers import OnnxClip

    folder = onnx_folder(model)
    if not (folder / "onnx_model.json").exists():
        export(model, folder)
    return OnnxClip(folder, ModelCache())


def run_indexing(
    report: Report, plan: Plan, device: str, model: str, sections: set[str], runtime: str = "torch"
) -> None:
    import torch

    from bench import indexing
    from indexer.settings import Settings

    encoder = bench_encoder(model, device, runtime)
    size = encoder.image_size
    folders = {name: corpus(name, n, processes=os.cpu_count() or 1) for name, n in plan.corpora.items()}
    for name, folder in folders.items():
        meta = describe(folder)
        report.add(
            "corpora", f"{name}: {meta['count']} JPEGs", meta["bytes"] / meta["count"] / 1e6, "MB/file"
        )
    if "decode" in sections:
        for name, folder in folders.items():
            draft, full = indexing.draft_speedup(folder, size, limit=20)
            report.add(
                "decode",
                f"{name} decode + fit_square, one process, draft mode",
                draft,
                "img/s",
                f"full decode: {full:.1f} img/s ({draft / full:.1f}x)",
            )
            for workers in sorted({os.cpu_count() or 1} if device == "cuda" else {1, os.cpu_count() or 1}):
                rate = indexing.decode_only_rate(folder, size, workers)
                report.add(
                    "decode",
                    f"{name} read_many ({workers} processes)",
                    rate,
                    "img/s",
                    "read + hash + draft decode + fit_square, incl. pool start-up",
                )
                if device == "cuda":  # what the workers do when the GPU decodes the JPEGs
                    rate = indexing.decode_only_rate(folder, size, workers, gpu_jpeg=True)
                    note = "read + hash + header, JPEG bytes shipped to the writer, incl. pool start-up"
                    report.add(
                        "decode",
                        f"{name} read_many for GPU decoding ({workers} processes)",
                        rate,
                        "img/s",
                        note,
                    )
    if "indexing" in sections:
        base = Settings(model=model, device=device, runtime=runtime, batch_size=plan.batch_size)
        # On CUDA: JPEGs decoded on the GPU (the default there) and, for comparison, by the workers.
        decoders = (True, False) if device == "cuda" else (False,)
        for name, folder in folders.items():
            variants = plan.worker_variants if name == "3mp" else (base.decode_workers(),)
            for workers, gpu_decode in ((w, g) for w in variants for g in decoders):
                ref = indexing.model_only_rate(encoder, plan.model_only, plan.batch_size)
                settings = base.replace(workers=workers, gpu_decode=gpu_decode)
                e2e = indexing.end_to_end(settings, folder, encoder)
                label = f"{name}, {model}, batch {plan.batch_size}, {workers} decoding processes"
                label += ", JPEGs decoded on the GPU" if gpu_decode else ""
                report.add("indexing", f"model only ({label})", ref, "img/s")
                note = f"{e2e.rows} rows in {e2e.seconds:.1f} s, {e2e.embed_s:.1f} s of it in the model"
                report.add("indexing", f"end to end ({label})", e2e.rate, "img/s", note)
                note = f"torch threads {torch.get_num_threads()}"
                report.add("indexing", f"end to end / model only ({label})", e2e.rate / ref, "", note)
                per_image = 1000 * e2e.catalog_s / max(e2e.rows, 1)
                ceiling = 1000 / max(per_image, 1e-9)
                note = f"in the commit thread, overlapping the model: a ceiling of {ceiling:.0f} img/s"
                hooks_ms = 1000 * e2e.hooks_s / max(e2e.rows, 1)
                note += f"; of it in the hooks (tag suggestions): {hooks_ms:.2f} ms"
                report.add("indexing", f"catalog commit per image ({label})", per_image, "ms", note)
    if "rss" in sections:
        rss, anon = indexing.model_loaded_rss(model, device)
        report.add(
            "rss",
            f"floor: a process with photoseek imported and {model} loaded",
            rss,
            "MB",
            f"of which anonymous {anon:.0f} MB; the rest is shared library pages",
        )
        rss_corpus = "3mp" if "3mp" in folders else next(iter(folders))
        peak, seconds = indexing.cli_index_peak_rss(folders[rss_corpus], model, device)
        n = plan.corpora[rss_corpus]
        report.add(
            "rss",
            f"`photoseek index` peak RSS, {rss_corpus} x {n}, {model}",
            peak,
            "MB",
            f"process tree, default workers; took {seconds:.1f} s ({n / seconds:.1f} img/s incl. start-up)",
        )
    if device == "cuda":
        run_gpu(report, plan, folders)


def run_gpu(report: Report, plan: Plan, folders: dict) -> None:
    from bench import gpu, indexing
    from indexer.encoder import load_encoder

    for spec in gpu.GPU_MODELS:
        enc = load_encoder(spec, "cuda")
        report.add(
            "gpu",
            f"model only, {spec} fp16, batch {plan.batch_size}",
            indexing.model_only_rate(enc, plan.model_only, plan.batch_size),
            "img/s",
        )
    enc = load_encoder(CUDA_MODEL, "cuda")
    for name, folder in folders.items():
        limit = min(plan.corpora[name], 5000)
        for stage, rate in gpu.nvjpeg_ceiling(folder, enc, plan.batch_size, limit).items():
            note = f"{limit} files read into memory first; {CUDA_MODEL}; no catalog"
            report.add("gpu", f"{name} nvJPEG {stage}, batch {plan.batch_size}", rate, "img/s", note)


def run_queries(
    report: Report, plan: Plan, device: str, model: str, sections: set[str], runtime: str = "torch"
) -> None:
    from bench import query
    from indexer.settings import Settings

    encoder = bench_encoder(model, device, runtime)
    above = Settings().approximate_above
    for n in plan.catalog_sizes:
        started = time.perf_counter()
        data_dir = query.catalog_for(n, encoder, above)
        print(
            f"catalog of {n:,}: {time.perf_counter() - started:.1f} s (cached after the first run)",
            flush=True,
        )
        settings = Settings(data_dir=data_dir, model=model, device=device, runtime=runtime)
        if "vector-index" in sections:
            query.bench_index(report, n, data_dir, encoder, min(plan.queries, 50 if n >= 1_000_000 else 200))
        if "query" in sections:
            query.bench_searcher(report, n, settings, encoder, plan.queries)
            query.bench_http(report, n, settings, plan.queries)
            if n >= 100_000 and above > n:  # the same through the approximate index, for comparison
                query.bench_http(report, n, settings.replace(approximate_above=1), plan.queries)
            query.bench_cli(report, n, data_dir, plan.cli_runs)
        if (
            "startup" in sections
            and n == sorted(plan.catalog_sizes)[-2 if len(plan.catalog_sizes) > 1 else 0]
        ):
            query.bench_startup(report, n, data_dir, cold=False)
            query.bench_startup(report, n, data_dir, cold=True)
    if "vector-memory" in sections:
        query.bench_index_in_memory(report, plan.memory_vectors, encoder.identity.dim, plan.queries)
    if "watch" in sections:
        from bench.watch_latency import bench_watch_latency

        for settle in (Settings().settle_s, 0.2):
            bench_watch_latency(report, encoder, device, plan.watch_files, settle)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="tiny corpora: check the suite runs")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    ap.add_argument("--model", help=f"image/text model [{CPU_MODEL} on cpu, {CUDA_MODEL} on cuda]")
    ap.add_argument("--corpora", nargs="+", choices=("12mp", "3mp", "0.3mp"), help="only these corpora")
    ap.add_argument("--workers", nargs="+", type=int, help="decoding processes to try on the 3 MP corpus")
    ap.add_argument("--sizes", nargs="+", type=int, help="catalog sizes for the query figures")
    ap.add_argument("--no-markdown", action="store_true", help="write the JSON only, not RESULTS.md")
    ap.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="what runs CLIP, in process and in the photoseek processes started [torch: the history's]",
    )
    args = ap.parse_args(argv)
    os.environ["PHOTOSEEK_RUNTIME"] = args.runtime  # serve and CLI processes the suite starts
    sections = set(args.only or SECTIONS)
    report = Report(machine.describe())
    title = f"bench.run --device {args.device} --runtime {args.runtime}{' --quick' if args.quick else ''}"
    if args.device == "cuda":
        from bench.gpu import cuda_available

        if not cuda_available():
            report.add("gpu", "every CUDA figure", None, "", "pending: CUDA is not available on this machine")
            print("CUDA is not available here: nothing to measure (recorded as pending)", file=sys.stderr)
            report.save_json(f"{time.strftime('%Y%m%d-%H%M%S')}-cuda-skipped")
            return 0
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    model = args.model or (CUDA_MODEL if args.device == "cuda" else CPU_MODEL)
    plan = plan_for(args.device, args.quick)
    if args.sizes:
        plan = dataclasses.replace(plan, catalog_sizes=tuple(args.sizes))
    if args.corpora:
        plan = dataclasses.replace(plan, corpora={k: v for k, v in plan.corpora.items() if k in args.corpora})
    if args.workers:
        plan = dataclasses.replace(plan, worker_variants=tuple(args.workers))
    started = time.perf_counter()
    if sections & {"decode", "indexing", "rss"}:
        run_indexing(report, plan, args.device, model, sections, args.runtime)
    if sections & {"vector-memory", "vector-index", "query", "startup", "watch"}:
        run_queries(report, plan, args.device, model, sections, args.runtime)
    report.add("suite", "total run time", time.perf_counter() - started, "s")
    path = report.save_json(f"{time.strftime('%Y%m%d-%H%M%S')}-{args.device}{'-quick' if args.quick else ''}")
    if not args.no_markdown:
        report.append_markdown(title)
    print(f"wrote {path}" + ("" if args.no_markdown else " and appended to bench/RESULTS.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
