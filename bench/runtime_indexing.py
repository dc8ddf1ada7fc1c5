"""photoseek's real indexing pipeline end to end with each CPU runtime: torch, ONNX Runtime fp32 and int8.

    flock /tmp/photoseek-cpu.lock .venv/bin/python -m bench.runtime_indexing [--reps 2]

A forecast for issue 11 until the runtime setting is wired into the CLI: `Writer.index_roots` on a fresh
data dir (bench/indexing.end_to_end: scan, hash, decode in worker processes, embed, commit, save the
vector index; no tag vocabulary, model already loaded) over the same corpora as bench/rclip_compare.py,
the runtimes interleaved. Compare with rclip's "start-up excluded" rate from the same machine's run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench import machine
from bench.corpus import corpus
from bench.report import Report

MODEL = "ViT-B-32-256:random"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--counts", default="3mp=150,12mp=100", help="corpus=count,...")
    ap.add_argument("--workers", type=int, default=-1, help="decoding processes (-1: one per core)")
    ap.add_argument("--threads", type=int, default=2, help="model threads (torch and onnxruntime)")
    ap.add_argument("--no-markdown", action="store_true")
    args = ap.parse_args()
    import torch

    from bench import indexing
    from bench.onnx_speed import EXPORT_DIR
    from indexer.encoder import load_encoder
    from indexer.onnx_encoder import OnnxEncoder
    from indexer.onnx_export import export
    from indexer.settings import Settings

    torch.set_num_threads(args.threads)
    info = machine.describe()
    info["command"] = " ".join(["python -m bench.runtime_indexing", *sys.argv[1:]])
    report = Report(info)
    if not (EXPORT_DIR / "onnx_model.json").exists():
        export(MODEL, EXPORT_DIR, int8=True)
    encoders = {
        "torch": load_encoder(MODEL, "cpu"),
        "onnxruntime fp32": OnnxEncoder(EXPORT_DIR, args.threads, "fp32"),
        "onnxruntime int8": OnnxEncoder(EXPORT_DIR, args.threads, "int8"),
    }
    settings = Settings(model=MODEL, device="cpu", workers=args.workers, torch_threads=args.threads)
    workers = settings.decode_workers
    workers = workers() if callable(workers) else workers  # a method in older trees, a property later
    counts = {k: int(v) for k, v in (kv.split("=") for kv in args.counts.split(","))}
    for name, n in counts.items():
        folder = corpus(name, n)
        runs: dict[str, list] = {k: [] for k in encoders}
        for rep in range(args.reps):
            for label, enc in list(encoders.items())[:: 1 if rep % 2 == 0 else -1]:
                runs[label].append(indexing.end_to_end(settings, folder, enc))
                print(f"  {name} {label}: {runs[label][-1]}", flush=True)
        for label, rs in runs.items():
            report.add(
                "end to end",
                f"{label}: Writer.index_roots, {name} x {n}, {workers} decoding processes",
                statistics.median(r.rate for r in rs),
                "photos/s",
                "runs "
                + " / ".join(f"{r.rate:.2f} ({r.embed_s:.0f} s of {r.seconds:.0f} in the model)" for r in rs),
            )
    report.add("suite", "load average (1 min) at the end", machine.load_average()[0], "")
    stem = time.strftime("%Y%m%d-%H%M") + "-runtime-indexing"
    print(f"saved {report.save_json(stem)}")
    if not args.no_markdown:
        report.append_markdown("photoseek indexing end to end per CPU runtime (issue 11 forecast)")


if __name__ == "__main__":
    main()
