"""The image and text towers on this CPU: torch fp32 (the reference) vs ONNX Runtime fp32 and int8.

    flock /tmp/photoseek-cpu.lock .venv/bin/python -m bench.onnx_speed [--images 64] [--rounds 2]

Model only (ready uint8 pixels, no decoding): images/s at batch 8 and 32, taken in alternating rounds
so that the machine's drift hits every runtime alike; one short text query (median ms); the import +
load time and RSS of a fresh process that loads each runtime's towers; onnxruntime thread settings;
and equivalence to torch on real photos (bench corpus, fit_square'd): cosine of image and text vectors.
The export (indexer/onnx_export.py) is made once and cached in /tmp/photoseek-bench/onnx.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import machine
from bench.corpus import CACHE, corpus
from bench.report import Report

MODEL = "ViT-B-32-256:random"
EXPORT_DIR = CACHE / "onnx" / "ViT-B-32-256-random"
TEXTS = ["a dog", "kids on a beach at sunset", "a red car parked in front of an old house", "snow"]

LOAD_TORCH = """
import time, json, psutil; t0 = time.perf_counter()
import torch; torch.set_num_threads(2)
from indexer.encoder import load_encoder
t1 = time.perf_counter(); e = load_encoder({model!r}, "cpu"); t2 = time.perf_counter()
e.encode_texts(["a dog"]); t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, psutil.Process().memory_info().rss / 2**20]))
"""
LOAD_ORT = """
import time, json, psutil; t0 = time.perf_counter()
from indexer.onnx_towers import OnnxImageTower, OnnxTextTower
import onnxruntime
t1 = time.perf_counter()
i = OnnxImageTower({folder!r}, threads=2, precision={precision!r})
t = OnnxTextTower({folder!r}, threads=2, precision={precision!r})
t2 = time.perf_counter(); t.encode_texts(["a dog"]); t3 = time.perf_counter()
import sys; assert "torch" not in sys.modules
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, psutil.Process().memory_info().rss / 2**20]))
"""
LOAD_ORT_TEXT = """
import time, json, psutil; t0 = time.perf_counter()
from indexer.onnx_towers import OnnxTextTower
t = OnnxTextTower({folder!r}, threads=2, precision={precision!r}); t.encode_texts(["a dog"])
print(json.dumps([time.perf_counter() - t0, psutil.Process().memory_info().rss / 2**20]))
"""


def rate(encode, pixels: np.ndarray, batch: int, images: int) -> float:
    encode(pixels[:batch])  # warm-up
    done, t0 = 0, time.perf_counter()
    while done < images:
        encode(pixels[:batch])
        done += batch
    return done / (time.perf_counter() - t0)


def text_ms(encode, reps: int = 15) -> float:
    encode(TEXTS[:1])
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        encode([TEXTS[i % len(TEXTS)]])
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def photo_pixels(n: int, size: int) -> np.ndarray:
    from indexer.decode import read_photo

    folder = corpus("3mp", 150)
    paths = sorted(folder.glob("*.jpg"))[:n]
    return np.stack([read_photo(str(p), size).pixels for p in paths])


def fresh(code: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=machine.REPO, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64, help="images per throughput figure")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-markdown", action="store_true")
    ap.add_argument(
        "--no-vocabulary", dest="vocabulary", action="store_false", help="skip the tag vocabulary"
    )
    ap.add_argument("--only-vocabulary", action="store_true", help="only the tag vocabulary section")
    args = ap.parse_args()
    import torch

    from indexer.encoder import load_encoder
    from indexer.onnx_export import export
    from indexer.onnx_towers import OnnxImageTower, OnnxTextTower

    torch.set_num_threads(2)
    info = machine.describe()
    info["command"] = " ".join(["python -m bench.onnx_speed", *sys.argv[1:]])
    import onnxruntime

    info["torch"] += f", onnxruntime {onnxruntime.__version__}"
    report = Report(info)
    if not (EXPORT_DIR / "onnx_model.json").exists():
        t0 = time.perf_counter()
        export(MODEL, EXPORT_DIR, int8=True)
        report.add(
            "export", f"export {MODEL} (fp32 + int8, with the parity check)", time.perf_counter() - t0, "s"
        )
    if args.only_vocabulary:
        vocabulary_time(report, args.rounds)
        return _finish(report, args)
    enc = load_encoder(MODEL, "cpu")
    pixels = photo_pixels(32, enc.image_size)
    runtimes = {
        "torch fp32": (enc.encode_pixels, enc.encode_texts),
        "onnxruntime fp32": (
            OnnxImageTower(EXPORT_DIR, 2).encode_pixels,
            OnnxTextTower(EXPORT_DIR, 2).encode_texts,
        ),
        "onnxruntime int8": (
            OnnxImageTower(EXPORT_DIR, 2, "int8").encode_pixels,
            OnnxTextTower(EXPORT_DIR, 2, "int8").encode_texts,
        ),
    }
    ref_img, ref_txt = enc.encode_pixels(pixels), enc.encode_texts(TEXTS)
    for name, (img, txt) in list(runtimes.items())[1:]:
        ci = np.sum(ref_img * img(pixels), axis=1)
        ct = np.sum(ref_txt * txt(TEXTS), axis=1)
        # Report rounds values to 3 decimals: the cosines' digits that matter are in the notes.
        report.add(
            "equivalence",
            f"{name}: image cosine to torch, 32 photos (min)",
            float(ci.min()),
            "",
            f"min {ci.min():.6f}, mean {ci.mean():.6f}",
        )
        report.add(
            "equivalence",
            f"{name}: text cosine to torch, {len(TEXTS)} queries (min)",
            float(ct.min()),
            "",
            f"min {ct.min():.6f}; torch's text tower runs in bf16 where the CPU has bf16 instructions"
            f" ({'yes' if enc._text_bf16 else 'no'} here)",
        )
    rates: dict[tuple[str, int], list[float]] = {}
    texts: dict[str, list[float]] = {}
    for r in range(args.rounds):
        order = list(runtimes.items()) if r % 2 == 0 else list(runtimes.items())[::-1]
        for name, (img, txt) in order:
            for batch in (8, 32):
                rates.setdefault((name, batch), []).append(rate(img, pixels, batch, args.images))
            texts.setdefault(name, []).append(text_ms(txt))
    for (name, batch), rs in rates.items():
        report.add(
            "model only",
            f"{name}: image tower, batch {batch}, 2 threads",
            statistics.median(rs),
            "img/s",
            "rounds " + " / ".join(f"{v:.2f}" for v in rs),
        )
    for name, ts in texts.items():
        report.add(
            "model only",
            f"{name}: one short text query, 2 threads",
            statistics.median(ts),
            "ms",
            "median of 15 per round; rounds " + " / ".join(f"{v:.1f}" for v in ts),
        )
    threads_sweep(report, pixels, args.images, args.rounds + 1)
    if args.vocabulary:
        vocabulary_time(report, args.rounds)
    del runtimes, enc
    t = fresh(LOAD_TORCH.format(model=MODEL))
    report.add("load", "torch: import torch + open_clip + photoseek encoder", t[0], "s", "fresh process")
    report.add("load", "torch: load_encoder (both towers, fp32)", t[1], "s", f"RSS after: {t[3]:.0f} MB")
    report.add("load", "torch: first text query", 1000 * t[2], "ms")
    for precision in ("fp32", "int8"):
        t = fresh(LOAD_ORT.format(folder=str(EXPORT_DIR), precision=precision))
        report.add(
            "load", f"onnxruntime {precision}: import onnxruntime + towers module", t[0], "s", "no torch"
        )
        report.add(
            "load",
            f"onnxruntime {precision}: both sessions + tokenizer",
            t[1],
            "s",
            f"RSS after: {t[3]:.0f} MB",
        )
        report.add("load", f"onnxruntime {precision}: first text query", 1000 * t[2], "ms")
        t = fresh(LOAD_ORT_TEXT.format(folder=str(EXPORT_DIR), precision=precision))
        report.add(
            "load",
            f"onnxruntime {precision}: text tower only, import to first answer",
            t[0],
            "s",
            f"RSS after: {t[1]:.0f} MB (what a CLI text query needs)",
        )
    _finish(report, args)


def _finish(report: Report, args) -> None:
    report.add("suite", "load average (1 min) at the end", machine.load_average()[0], "")
    stem = time.strftime("%Y%m%d-%H%M") + "-onnx-speed"
    print(f"saved {report.save_json(stem)}")
    if not args.no_markdown:
        report.append_markdown("CLIP towers on the CPU: torch vs ONNX Runtime fp32 / int8 (issue 11)")


VOCABULARY = """
import time, sys, numpy as np
from indexer.tags.prompts import embed_vocabulary
from indexer.tags.vocabulary import load_vocabulary
runtime, folder, out = sys.argv[1:4]
if runtime == "torch":
    import torch; torch.set_num_threads(2)
    from indexer.encoder import load_encoder
    enc = load_encoder({model!r}, "cpu")
else:
    from indexer.onnx_encoder import OnnxEncoder
    enc = OnnxEncoder(folder, 2, runtime)
    enc.encode_texts(["a photo"])  # the session loaded, as torch's is by load_encoder
vocabulary = load_vocabulary(None, enc.identity.name)
t0 = time.perf_counter()
matrix = embed_vocabulary(enc, vocabulary).matrix
print(time.perf_counter() - t0)
np.save(out, matrix)
"""


def vocabulary_time(report: Report, rounds: int) -> None:
    """The tag vocabulary's prompts (what an empty `index` embeds today) through each text tower, each in a
    fresh process (in one shared with other runtimes' threads, torch took 4x as long), rounds alternating."""
    import tempfile

    from indexer.tags.vocabulary import load_vocabulary

    vocabulary = load_vocabulary(None, MODEL.split(":")[0])
    prompts = sum(len(c.texts(vocabulary.templates)) for c in vocabulary.concepts) + len(vocabulary.neutral)
    code = VOCABULARY.format(model=MODEL)
    times: dict[str, list[float]] = {}
    matrices = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for runtime in ("torch", "fp32", "int8")[:: 1 if r % 2 == 0 else -1]:
                out = Path(tmp) / f"{runtime}.npy"
                cmd = [sys.executable, "-c", code, runtime, str(EXPORT_DIR), str(out)]
                res = subprocess.run(cmd, cwd=machine.REPO, capture_output=True, text=True, check=True)
                times.setdefault(runtime, []).append(float(res.stdout.strip().splitlines()[-1]))
                matrices[runtime] = np.load(out)
    for runtime, ts in times.items():
        note = (
            f"{prompts} prompts ({len(vocabulary.concepts)} concepts x {len(vocabulary.templates)} templates)"
        )
        note += "; rounds " + " / ".join(f"{t:.1f}" for t in ts)
        if runtime != "torch":
            cos = np.sum(matrices["torch"] * matrices[runtime], axis=1)
            note += f"; concept vectors' cosine to torch's (bf16 text here): min {cos.min():.6f}"
        name = "torch" if runtime == "torch" else f"onnxruntime {runtime}"
        report.add(
            "vocabulary",
            f"{name}: embed the built-in tag vocabulary, 2 threads, fresh process",
            statistics.median(ts),
            "s",
            note,
        )


def _session(path: Path, threads: int, spin: bool):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def threads_sweep(report: Report, pixels: np.ndarray, images: int, rounds: int) -> None:
    """Image tower, batch 32: 1 or 2 intra-op threads, spinning or not, fp32 and int8, in alternating
    rounds (single measurements minutes apart disagreed by 2x on the shared machine)."""
    from indexer.onnx_towers import OnnxImageTower

    variants = {}
    for precision in ("fp32", "int8"):
        for threads in (1, 2):
            for spin in (False, True):
                tower = OnnxImageTower(EXPORT_DIR, threads, precision)
                tower._session = _session(tower.manifest.path("image", precision), threads, spin)
                variants[(precision, threads, spin)] = tower
    rates: dict[tuple, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for key, tower in list(variants.items())[:: 1 if r % 2 == 0 else -1]:
            rates[key].append(rate(tower.encode_pixels, pixels, 32, images))
    for (precision, threads, spin), rs in rates.items():
        report.add(
            "threads",
            f"onnxruntime {precision}, batch 32, {threads} intra-op thread(s), "
            f"spinning {'on' if spin else 'off'}",
            statistics.median(rs),
            "img/s",
            "rounds " + " / ".join(f"{v:.2f}" for v in rs),
        )


if __name__ == "__main__":
    main()
