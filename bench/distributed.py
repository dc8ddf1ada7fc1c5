"""Throughput of `photoseek index --ray` on this machine: plain, then a local Ray cluster of 1 and 2 nodes.

    python -m bench.distributed --corpus 3mp --count 150 --model ViT-B-32-256:random

Each run indexes the same corpus into a fresh data dir through Library.writer(), as `photoseek index`
does, in steady state: the model checked, the tag vocabulary in hand, the image tower (plain) or the
cluster's actors (Ray) loaded before the clock starts; start-up is reported apart. The nodes are real
`ray start` processes on this machine (tests/ray_support.py), so 2 nodes share the same 2 cores: the
figure shows what the Ray path costs, not what a second machine adds (docs/distributed.md models that).
Also measured: each stage's bound here (decode, model, the driver's commit, bytes shipped per photo).
Prints a markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.corpus import CACHE, corpus, describe
from bench.indexing import decode_only_rate, model_only_rate
from bench.machine import describe as machine
from indexer.distributed import RayOptions
from indexer.library import Library
from indexer.settings import Settings

RAY_CACHE = CACHE / "ray-cache"  # PHOTOSEEK_CACHE_DIR of the runs and of the cluster's workers


def _machine_cache(model: str) -> None:
    """Reuse bench/onnx_speed.py's export of the model (minutes of torch on 2 cores) if there is one."""
    os.environ["PHOTOSEEK_CACHE_DIR"] = str(RAY_CACHE)
    from indexer.library import onnx_folder

    folder, made = onnx_folder(model), CACHE / "onnx" / model.replace(":", "-")
    if not folder.exists() and (made / "onnx_model.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(made)


def index_once(settings: Settings, folder: Path, address: str | None) -> dict:
    data_dir = Path(tempfile.mkdtemp(dir=CACHE / "runs"))
    try:
        with Library.open(settings.replace(data_dir=data_dir)) as lib:
            ray = RayOptions.parse(address) if address else None
            writer = lib.writer(images_only=True, ray=ray)
            stage = writer.cluster
            started = time.perf_counter()
            writer.model_id()  # the model checked, the tag vocabulary's embeddings in hand
            enc = lib.encoder()
            if stage is not None:
                stage.start(enc.identity)  # actors placed and their models loaded
            else:
                enc.encode_pixels(np.zeros((1, enc.image_size, enc.image_size, 3), np.uint8))
            startup = time.perf_counter() - started
            commit_s = [0.0]
            commit = writer._commit

            def timed(*args):
                t = time.perf_counter()
                try:
                    commit(*args)
                finally:
                    commit_s[0] += time.perf_counter() - t

            writer._commit = timed  # type: ignore[method-assign]
            started = time.perf_counter()
            summary = writer.index_roots([folder])
            elapsed = time.perf_counter() - started
        assert not summary.failed, summary.text()
        out = {"rate": summary.new / elapsed, "n": summary.new, "s": elapsed, "startup": startup}
        out["commit_ms"] = 1000 * commit_s[0] / max(summary.new, 1)
        if stage is not None:
            out["nodes"] = {k: v / elapsed for k, v in sorted(stage.rates.photos.items())}
            out["shipped_mb"] = stage.rates.shipped / 1e6
        return out
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def on_cluster(nodes: int, cpus: int, settings: Settings, folder: Path) -> dict:
    from tests.ray_support import LocalCluster

    cluster = LocalCluster(cpus_per_node=cpus).start(nodes)
    try:
        return index_once(settings, folder, cluster.address)
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="3mp")
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--model", default="ViT-B-32-256:random")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    _machine_cache(args.model)
    (CACHE / "runs").mkdir(parents=True, exist_ok=True)
    folder = corpus(args.corpus, args.count)
    meta = describe(folder)
    base = Settings(model=args.model, device="cpu", runtime="onnx", batch_size=args.batch_size, workers=2)
    info = machine()
    rows = []
    plain = index_once(base, folder, None)
    rows.append(("plain `photoseek index` (2 decoding processes, ORT 2 threads)", plain))
    one = on_cluster(1, 2, base, folder)
    rows.append(("`--ray`, 1 node (`--num-cpus 2`: 2 read tasks; 1 actor, ORT 2 threads)", one))
    two = on_cluster(2, 1, base.replace(torch_threads=1), folder)
    rows.append(("`--ray`, 2 nodes on this machine (`--num-cpus 1` each; 2 actors, ORT 1 thread each)", two))
    # Stage bounds on this machine, measured alone.
    with Library.open(base.replace(data_dir=Path(tempfile.mkdtemp(dir=CACHE / "runs")))) as lib:
        enc = lib.encoder()
        model = model_only_rate(enc, 96, args.batch_size)
        decode = decode_only_rate(folder, enc.image_size, 2)
    mb = meta["bytes"] / meta["count"] / 1e6
    after = [round(x, 2) for x in os.getloadavg()]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"## bench.distributed: `index --ray` on 1 and 2 local nodes ({when})\n")
    print(
        f"`python -m bench.distributed --corpus {args.corpus} --count {args.count} --model {args.model} "
        f"--batch-size {args.batch_size}`, commit {info['commit']}, {info['cpu']} ({info['cores']} cores), "
        f"load average before {info['load_at_start']}, after {after}. "
        f"Corpus: {meta['count']} x {args.corpus} JPEGs, {mb:.2f} MB each.\n"
    )
    print("| run | photos/s | start-up s | commit ms/photo | per node photos/s | MB shipped |")
    print("|---|---:|---:|---:|---|---:|")
    for name, r in rows:
        nodes = ", ".join(f"{k} {v:.1f}" for k, v in r.get("nodes", {}).items()) or "-"
        shipped = f"{r['shipped_mb']:.0f}" if "shipped_mb" in r else "-"
        rate, up, commit = f"{r['rate']:.1f}", f"{r['startup']:.1f}", f"{r['commit_ms']:.2f}"
        print(f"| {name} | {rate} | {up} | {commit} | {nodes} | {shipped} |")
    print(
        f"\nStage bounds here, each alone: decode (read, hash, draft decode, fit; 2 processes) "
        f"{decode:.1f} photos/s; model (ORT fp32, 2 threads, batch {args.batch_size}) {model:.1f} photos/s; "
        f"the driver's commit thread {1000 / max(plain['commit_ms'], 1e-9):.0f} photos/s; "
        f"{mb:.2f} MB shipped per photo."
    )


if __name__ == "__main__":
    main()
