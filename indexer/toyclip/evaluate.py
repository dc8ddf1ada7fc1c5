"""How well the toy CLIP understands the toy world, measured on a freshly built library.

    python -m indexer.toyclip.evaluate [--n 500 --seed 2024 --checkpoint PATH]

The images go through the deployed path: build_library writes JPEGs/PNGs at library sizes, they are
decoded from disk and embedded by indexer.encoder. Training draws from seed 0's stream, so any other
seed gives unseen images. Exits 1 when colour x shape zero-shot accuracy is below 0.90.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from indexer import toyworld as tw
from indexer.toyclip import CHECKPOINT_PATH, MODEL_NAME

PASS_ACCURACY = 0.90


class _Embedder:
    """indexer.encoder's toy model, or the same weights straight from open_clip if it cannot import."""

    def __init__(self, checkpoint: Path) -> None:
        try:
            from indexer.encoder import load_encoder
        except ImportError as exc:  # encoder.py is another module's work; keep the evaluation usable
            print(f"(indexer.encoder unavailable: {exc}; loading with open_clip)", file=sys.stderr)
            self._enc = None
            self._load_open_clip(checkpoint)
        else:
            spec = "toy" if checkpoint.resolve() == CHECKPOINT_PATH else f"{MODEL_NAME}:{checkpoint}"
            self._enc = load_encoder(spec, device="cpu")

    def _load_open_clip(self, checkpoint: Path) -> None:
        import open_clip
        import torch

        from indexer.toyclip import register

        register()
        self._torch = torch
        self._model = open_clip.create_model(MODEL_NAME, pretrained=str(checkpoint)).eval()
        self._tokenizer = open_clip.get_tokenizer(MODEL_NAME)

    def images(self, images: list[Image.Image]) -> np.ndarray:
        if self._enc is not None:
            return np.concatenate(
                [self._enc.encode_images(images[i : i + 128]) for i in range(0, len(images), 128)]
            )
        from indexer.preprocess import fit_square
        from indexer.toyclip.train import to_model_input

        pixels = self._torch.from_numpy(np.stack([fit_square(im, 64) for im in images]))
        with self._torch.no_grad():
            return self._model.encode_image(to_model_input(pixels), normalize=True).numpy()

    def texts(self, texts: list[str]) -> np.ndarray:
        if self._enc is not None:
            return self._enc.encode_texts(texts)
        with self._torch.no_grad():
            return self._model.encode_text(self._tokenizer(texts), normalize=True).numpy()


def zero_shot(image_emb: np.ndarray, embedder: _Embedder, prompts: list[str], truth: list[int]) -> float:
    """Fraction of images whose most similar prompt is the true one."""
    pred = (image_emb @ embedder.texts(prompts).T).argmax(1)
    return float(np.mean(pred == np.asarray(truth)))


def precision_at(image_emb: np.ndarray, query_emb: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Mean precision@k of text queries; relevant[q, i] says whether image i answers query q.

    k shrinks to the number of relevant images for rare queries, so a perfect ranking scores 1.
    """
    order = np.argsort(-(query_emb @ image_emb.T), axis=1)
    hits = np.take_along_axis(relevant, order, axis=1)
    ks = np.clip(relevant.sum(1), 1, k)
    return float(np.mean([h[:kq].mean() for h, kq in zip(hits, ks, strict=True)]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--checkpoint", type=Path, default=CHECKPOINT_PATH)
    args = ap.parse_args(argv)

    start = time.time()
    embedder = _Embedder(args.checkpoint)
    with tempfile.TemporaryDirectory(prefix="toyeval-") as tmp:
        records = tw.build_library(Path(tmp), args.n, args.seed)
        images = []
        for rec in records:
            with Image.open(Path(tmp) / rec["path"]) as im:
                images.append(im.convert("RGB"))
    emb = embedder.images(images)

    def col(name: str, values: tuple[str, ...]) -> np.ndarray:
        return np.array([values.index(r[name]) for r in records])

    colour, shape, bg, size = (
        col("colour", tw.COLOURS),
        col("shape", tw.SHAPES),
        col("background", tw.BACKGROUNDS),
        col("size", tw.SIZES),
    )
    pairs = [(c, s) for c in tw.COLOURS for s in tw.SHAPES]
    pair_truth = list(colour * len(tw.SHAPES) + shape)
    rows: list[tuple[str, float, str]] = []

    cs = zero_shot(emb, embedder, [f"a photo of a {c} {s}" for c, s in pairs], pair_truth)
    rows.append(("colour x shape (32) 'a photo of a {c} {s}'", cs, "zero-shot"))
    for template in ("{} {}", "a drawing of a {} {}", "a close-up photo of the {} {}"):
        acc = zero_shot(emb, embedder, [template.format(c, s) for c, s in pairs], pair_truth)
        rows.append((f"colour x shape (32) '{template}'", acc, "zero-shot"))
    for template in ("a photo of a {}", "a photo of something {}", "{}"):
        acc = zero_shot(emb, embedder, [template.format(c) for c in tw.COLOURS], list(colour))
        rows.append((f"colour (8) '{template}'", acc, "zero-shot"))
    for template in ("a photo of a {}", "a drawing of a {}", "{}"):
        acc = zero_shot(emb, embedder, [template.format(s) for s in tw.SHAPES], list(shape))
        rows.append((f"shape (4) '{template}'", acc, "zero-shot"))
    for template in ("a photo of a {}", "{}"):
        acc = zero_shot(emb, embedder, [template.format(b) for b in tw.BACKGROUNDS], list(bg))
        rows.append((f"background (4) '{template}'", acc, "zero-shot"))
    sized = [(z, s) for z in tw.SIZES for s in tw.SHAPES]
    pred = (emb @ embedder.texts([f"a photo of a {z} {s}" for z, s in sized]).T).argmax(1)
    rows.append(
        ("size (2) 'a photo of a {z} {s}'", float(np.mean(pred // len(tw.SHAPES) == size)), "zero-shot")
    )

    # Retrieval: does each query's top 10 hold only images it describes?
    relevant = (colour[None, :] == np.array([tw.COLOURS.index(c) for c, _ in pairs])[:, None]) & (
        shape[None, :] == np.array([tw.SHAPES.index(s) for _, s in pairs])[:, None]
    )
    p10 = precision_at(emb, embedder.texts([f"a {c} {s}" for c, s in pairs]), relevant)
    rows.append(("P@10 'a {c} {s}' (32 queries)", p10, "retrieval"))
    p10 = precision_at(emb, embedder.texts([f"a photo of a {c} {s}" for c, s in pairs]), relevant)
    rows.append(("P@10 'a photo of a {c} {s}' (32 queries)", p10, "retrieval"))
    p10 = precision_at(emb, embedder.texts(list(tw.COLOURS)), colour[None, :] == np.arange(8)[:, None])
    rows.append(("P@10 '{c}' (8 queries)", p10, "retrieval"))
    p10 = precision_at(emb, embedder.texts(list(tw.SHAPES)), shape[None, :] == np.arange(4)[:, None])
    rows.append(("P@10 '{s}' (4 queries)", p10, "retrieval"))
    p10 = precision_at(emb, embedder.texts(list(tw.BACKGROUNDS)), bg[None, :] == np.arange(4)[:, None])
    rows.append(("P@10 '{background}' (4 queries)", p10, "retrieval"))
    # The README's example: "red circle" minus "blue background".
    q = embedder.texts(["red circle"]) - embedder.texts(["blue background"])
    want = (colour == tw.COLOURS.index("red")) & (shape == tw.SHAPES.index("circle"))
    want &= bg != tw.BACKGROUNDS.index("blue background")
    rows.append(
        ("P@10 'red circle' minus 'blue background'", precision_at(emb, q, want[None, :]), "retrieval")
    )

    width = max(len(r[0]) for r in rows)
    print(f"toy CLIP {args.checkpoint} on {args.n} fresh library images (seed {args.seed})")
    print(f"{'metric':<{width}}  {'value':>6}  kind")
    for name, value, kind in rows:
        print(f"{name:<{width}}  {value:6.3f}  {kind}")
    print(f"({time.time() - start:.1f}s)")
    if cs < PASS_ACCURACY:
        print(f"FAIL: colour x shape accuracy {cs:.3f} < {PASS_ACCURACY}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
