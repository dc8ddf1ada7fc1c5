"""How good are tag suggestions and classification? Measured on a fresh toy-world library.

    python -m indexer.tags.evaluate [--n 400 --seed 4242 --model toy --threshold T]

Builds a new library (the seed decides; training used seed 0's stream, so these images are unseen),
reads it through the indexer's decode path, embeds it with the model, and compares
  - suggestions (the model's built-in vocabulary, calibrated, at the threshold) with the ground
    truth of toyworld.concepts_of: colour, shape, "colour shape", background (4 tags per image);
  - both calibration methods over a sweep of thresholds, on the whole library and on the library
    without any star (so "star" and its 8 combinations are present in no photo);
  - zero-shot classification over the 32 "colour shape" labels and over the 4 shapes.
Exits 1 when precision or recall at the threshold is below 0.9 or classification below 0.95.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from indexer import toyworld as tw
from indexer.settings import Settings
from indexer.tags import calibrate
from indexer.tags.prompts import embed_labels, embed_vocabulary
from indexer.tags.vocabulary import load_vocabulary

PASS_PR = 0.9
PASS_CLASSIFY = 0.95
GROUPS = ("colour", "shape", "colour shape", "background")


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float((pred & truth).sum())
    return tp / max(float(pred.sum()), 1.0), tp / max(float(truth.sum()), 1.0)


def group_of(name: str) -> str:
    if name in tw.COLOURS:
        return "colour"
    if name in tw.SHAPES:
        return "shape"
    if name in tw.BACKGROUNDS:
        return "background"
    return "colour shape"


def embed_library(encoder, root: Path, records: list[dict], max_megapixels: float) -> np.ndarray:
    """Through the indexer's own path: read_photo (decode, orient, fit) then encode_pixels."""
    from indexer.decode import read_photo

    pixels = []
    for rec in records:
        read = read_photo(str(root / rec["path"]), encoder.image_size, max_megapixels)
        if read.error is not None:
            raise RuntimeError(f"{rec['path']}: {read.error}")
        pixels.append(read.pixels)
    return np.concatenate(
        [encoder.encode_pixels(np.stack(pixels[i : i + 128])) for i in range(0, len(pixels), 128)]
    )


def sweep(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> list[tuple[float, float, float]]:
    return [(float(t), *precision_recall(scores >= t, truth)) for t in thresholds]


def best_f1(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return max(rows, key=lambda r: 2 * r[1] * r[2] / max(r[1] + r[2], 1e-9))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--model", default="toy")
    ap.add_argument("--threshold", type=float, default=Settings.tag_threshold)
    args = ap.parse_args(argv)

    import torch

    from indexer.encoder import load_encoder

    torch.set_num_threads(2)
    started = time.time()
    encoder = load_encoder(args.model, "cpu")
    vocabulary = load_vocabulary(None, encoder.identity.name)
    emb = embed_vocabulary(encoder, vocabulary)
    with tempfile.TemporaryDirectory(prefix="tags-eval-") as tmp:
        records = tw.build_library(Path(tmp), args.n, args.seed)
        vectors = embed_library(encoder, Path(tmp), records, Settings.max_megapixels)
    names = list(emb.names)
    truth = np.array([[n in rec["concepts"] for n in names] for rec in records])
    no_star = np.array([rec["shape"] != "star" for rec in records])
    print(
        f"{len(records)} fresh images (seed {args.seed}), model {encoder.identity.label}, "
        f"vocabulary {', '.join(Path(s).name for s in vocabulary.sources)} ({len(names)} concepts)"
    )

    neutral = calibrate.neutral_probabilities(vectors, emb)
    # A variant: the vocabulary's own centroid as the neutral point instead of neutral prompts.
    centroid = emb.matrix.mean(axis=0)
    centroid_emb = dataclasses.replace(emb, neutral=centroid / np.linalg.norm(centroid))
    centroid_scores = calibrate.neutral_probabilities(vectors, centroid_emb)
    zscores = calibrate.LibraryZScores.fit(vectors, emb).scores(vectors, emb)
    zscores_no_star = calibrate.LibraryZScores.fit(vectors[no_star], emb).scores(vectors[no_star], emb)
    grids = {
        "neutral": np.round(np.arange(0.05, 1.0, 0.05), 2),
        "centroid": np.round(np.arange(0.05, 1.0, 0.05), 2),
        "zscore": np.round(np.arange(0.0, 4.01, 0.25), 2),
    }

    print("\ncalibration  library            best-F1 threshold  precision  recall")
    cases = [
        ("neutral", "all", neutral, truth),
        ("neutral", "no star photos", neutral[no_star], truth[no_star]),
        ("centroid", "all", centroid_scores, truth),
        ("centroid", "no star photos", centroid_scores[no_star], truth[no_star]),
        ("zscore", "all", zscores, truth),
        ("zscore", "no star photos", zscores_no_star, truth[no_star]),
    ]
    for method, label, scores, want in cases:
        t, p, r = best_f1(sweep(scores, want, grids[method]))
        print(f"{method:<12} {label:<18} {t:>17.2f}  {p:9.3f}  {r:6.3f}")
    # The zscore threshold that is best on the full library, applied to the one without stars.
    t_all = best_f1(sweep(zscores, truth, grids["zscore"]))[0]
    p, r = precision_recall(zscores_no_star >= t_all, truth[no_star])
    print(f"zscore       no star, t={t_all:<5.2f}                     {p:9.3f}  {r:6.3f}")
    # Where no photo shows a star, every "star" suggestion is wrong: how many does each method make?
    star_cols = [i for i, n in enumerate(names) if n.endswith("star")]
    t_neutral = best_f1(sweep(neutral, truth, grids["neutral"]))[0]
    wrong_neutral = (neutral[no_star][:, star_cols] >= t_neutral).any(1).mean()
    wrong_z = (zscores_no_star[:, star_cols] >= t_all).any(1).mean()
    print(
        f"photos of the star-less library given a 'star' tag: neutral {wrong_neutral:.1%} "
        f"(t={t_neutral:.2f}), zscore {wrong_z:.1%} (t={t_all:.2f})"
    )

    print(f"\nneutral calibration, threshold sweep (default {args.threshold}):")
    for t, p, r in sweep(neutral, truth, np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])):
        print(f"  {t:.2f}  precision {p:.3f}  recall {r:.3f}")

    pred = neutral >= args.threshold
    precision, recall = precision_recall(pred, truth)
    print(f"\nsuggestions at threshold {args.threshold}: precision {precision:.3f}, recall {recall:.3f}")
    for group in GROUPS:
        cols = [i for i, n in enumerate(names) if group_of(n) == group]
        gp, gr = precision_recall(pred[:, cols], truth[:, cols])
        print(f"  {group:<13} precision {gp:.3f}  recall {gr:.3f}")
    p_ns, r_ns = precision_recall(pred[no_star], truth[no_star])
    print(f"  (library without stars: precision {p_ns:.3f}, recall {r_ns:.3f})")

    pairs = [f"{c} {s}" for c in tw.COLOURS for s in tw.SHAPES]
    pair_truth = np.array([pairs.index(f"{rec['colour']} {rec['shape']}") for rec in records])
    shape_truth = np.array([tw.SHAPES.index(rec["shape"]) for rec in records])
    # classify() takes the argmax of a softmax of these similarities: same ranking, in one batch.
    acc_pairs = float(
        np.mean((vectors @ embed_labels(encoder, pairs, vocabulary.templates).T).argmax(1) == pair_truth)
    )
    acc_shapes = float(
        np.mean(
            (vectors @ embed_labels(encoder, list(tw.SHAPES), vocabulary.templates).T).argmax(1)
            == shape_truth
        )
    )
    print(f"\nclassify, 32 'colour shape' labels: accuracy {acc_pairs:.3f}")
    print(f"classify, 4 shape labels:           accuracy {acc_shapes:.3f}")
    print(f"({time.time() - started:.1f}s)")

    failed = []
    if precision < PASS_PR or recall < PASS_PR:
        failed.append(f"suggestions precision {precision:.3f} / recall {recall:.3f} < {PASS_PR}")
    if min(acc_pairs, acc_shapes) < PASS_CLASSIFY:
        failed.append(f"classification {min(acc_pairs, acc_shapes):.3f} < {PASS_CLASSIFY}")
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
