"""Train the toy CLIP on freshly drawn toy-world (image, caption) pairs.

    python -m indexer.toyclip.train [--steps 1800 --batch 128 --out indexer/toyclip/toy_clip.pt --seed 7]

Images are rendered at library sizes and go through indexer.preprocess.fit_square, exactly as the
indexer feeds photos, then OpenAI CLIP normalisation. Captions are varied phrasings of the whole
scene or of one or two of its concepts ("a photo of a red", "a drawing of a star", "a circle on a blue
background"), because search and tagging embed such partial phrases.

A partial caption is true of many images in a batch, so the loss is CLIP's symmetric cross-entropy
with multi-positive targets: every (image, caption) pair whose caption is true of the image counts as
a positive, instead of treating other circles as negatives for "a circle".
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from indexer import toyworld as tw
from indexer.preprocess import fit_square
from indexer.toyclip import CHECKPOINT_PATH, MODEL_NAME, register

IMAGE_SIZE = 64
# Attribute columns of the integer spec/claim arrays; -1 in a claim means "caption says nothing".
ATTRS = ("colour", "shape", "background", "size")
_VALUES = (tw.COLOURS, tw.SHAPES, tw.BACKGROUNDS, tw.SIZES)

TEMPLATES = (
    "{}",
    "a {}",
    "the {}",
    "a photo of a {}",
    "a photo of the {}",
    "a picture of a {}",
    "a drawing of a {}",
    "a close-up photo of the {}",
    "a close-up photo of a {}",
    "an image of a {}",
    "a good photo of a {}",
    "a photo of my {}",
    "a rendering of a {}",
    "a snapshot of the {}",
    "there is a {}",
)
# Extra phrasings that only fit a colour on its own.
COLOUR_TEMPLATES = (
    "something {}",
    "a photo of something {}",
    "a {} object",
    "a {} thing",
    "a photo of a {} object",
    "a {} shape",
    "an object that is {}",
    "the colour {}",
)

# (kind, probability, attributes the caption states). Full-scene captions dominate; partial ones
# teach the text tower single concepts. Colour and background are learnt in a few dozen steps, so
# captions naming only them are kept rarer: shape is what needs the gradient.
_KINDS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("object", 0.26, ("colour", "shape")),
    ("object_bg", 0.15, ("colour", "shape", "background")),
    ("sized_object", 0.06, ("colour", "shape", "size")),
    ("colour", 0.08, ("colour",)),
    ("shape", 0.14, ("shape",)),
    ("background", 0.08, ("background",)),
    ("shape_bg", 0.07, ("shape", "background")),
    ("colour_bg", 0.03, ("colour", "background")),
    ("sized_shape", 0.05, ("shape", "size")),
    ("full", 0.08, ("colour", "shape", "background", "size")),
)
_KIND_P = np.array([k[1] for k in _KINDS]) / sum(k[1] for k in _KINDS)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def sample_caption(spec: tw.Spec, rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    """A caption true of `spec` and the attributes it states."""
    kind, _, attrs = _KINDS[rng.choice(len(_KINDS), p=_KIND_P)]
    c, s, bg, z = spec.colour, spec.shape, spec.background, spec.size
    if kind == "colour" and rng.random() < 0.5:
        text = _pick(rng, COLOUR_TEMPLATES).format(c)
    elif kind == "colour_bg":
        text = _pick(rng, ("something {} on a {}", "a {} object on a {}", "a {} thing on a {}")).format(c, bg)
    elif kind == "full":
        text = tw.caption(spec, rng)
        attrs = tuple(a for a in ATTRS if getattr(spec, a) in text)
    else:
        phrase = {
            "object": f"{c} {s}",
            "object_bg": f"{c} {s} on a {bg}",
            "sized_object": f"{z} {c} {s}",
            "colour": c,
            "shape": _pick(rng, (s, s, f"{s} shape")),
            "background": _pick(rng, (bg, bg, f"plain {bg}")),
            "shape_bg": f"{s} on a {bg}",
            "sized_shape": f"{z} {s}",
        }[kind]
        text = _pick(rng, TEMPLATES).format(phrase)
    if rng.random() < 0.5:  # people write both "a orange" and "an orange"
        text = re.sub(r"\ba (?=[aeiou])", "an ", text)
    return text, attrs


def spec_ids(spec: tw.Spec) -> list[int]:
    return [values.index(getattr(spec, a)) for a, values in zip(ATTRS, _VALUES, strict=True)]


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """BxHxWx3 uint8 -> normalised Bx3xHxW float, as open_clip's OpenAI-CLIP transform does."""
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (pixels.permute(0, 3, 1, 2).float().div_(255) - mean) / std


def sample_specs(rng: np.random.Generator, batch: int, hard: float) -> list[tw.Spec]:
    """`hard` of the batch comes as groups of the four shapes sharing colour, background and size.

    Colour and background are learnt within a few dozen steps and then solve most of a random batch,
    so shape gets little gradient; in a group only the shape tells the captions apart.
    """
    specs: list[tw.Spec] = []
    n_groups = int(batch * hard) // len(tw.SHAPES)
    for _ in range(n_groups):
        base = tw.sample_spec(rng)
        specs += [tw.Spec(base.colour, s, base.background, base.size) for s in tw.SHAPES]
    specs += [tw.sample_spec(rng) for _ in range(batch - len(specs))]
    return specs


def make_batch(rng: np.random.Generator, batch: int, tokenizer, hard: float = 0.5) -> dict[str, torch.Tensor]:
    """Fresh images (uint8), tokens, each image's attribute ids and each caption's claimed ids."""
    pixels = np.empty((batch, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    specs, claims, texts = [], [], []
    for i, spec in enumerate(sample_specs(rng, batch, hard)):
        size = tw.LIBRARY_SIZES[rng.integers(len(tw.LIBRARY_SIZES))]
        pixels[i] = fit_square(tw.render(spec, size, rng), IMAGE_SIZE)
        text, attrs = sample_caption(spec, rng)
        ids = spec_ids(spec)
        specs.append(ids)
        claims.append([v if a in attrs else -1 for a, v in zip(ATTRS, ids, strict=True)])
        texts.append(text)
    return {
        "pixels": torch.from_numpy(pixels),
        "tokens": tokenizer(texts),
        "specs": torch.tensor(specs),
        "claims": torch.tensor(claims),
    }


class _Batches(torch.utils.data.IterableDataset):
    """Endless fresh batches, drawn in a DataLoader worker while the main process trains."""

    def __init__(self, seed: int, batch: int, hard: float) -> None:
        self.seed, self.batch, self.hard = seed, batch, hard

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        import open_clip

        register()
        torch.set_num_threads(1)
        tokenizer = open_clip.get_tokenizer(MODEL_NAME)
        rng = np.random.default_rng(self.seed)
        while True:
            yield make_batch(rng, self.batch, tokenizer, self.hard)


def match_matrix(specs: torch.Tensor, claims: torch.Tensor) -> torch.Tensor:
    """match[i, j] is True when caption j is true of image i."""
    agree = (claims[None, :, :] == -1) | (claims[None, :, :] == specs[:, None, :])
    return agree.all(-1)


def multi_positive_clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, match: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP cross-entropy whose targets spread evenly over all true pairs."""
    logits = logit_scale * image_features @ text_features.T
    target = match.float()
    i2t = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(target / target.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (i2t + t2i) / 2


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def quick_accuracy(model, tokenizer, seed: int, n: int = 256) -> tuple[float, float]:
    """Zero-shot (colour x shape, shape) accuracy on n fresh images; evaluate.py does the full report."""
    rng = np.random.default_rng(seed)
    specs = [tw.sample_spec(rng) for _ in range(n)]
    pixels = np.stack(
        [
            fit_square(tw.render(s, tw.LIBRARY_SIZES[i % len(tw.LIBRARY_SIZES)], rng), 64)
            for i, s in enumerate(specs)
        ]
    )
    classes = [(c, s) for c in tw.COLOURS for s in tw.SHAPES]
    text = model.encode_text(tokenizer([f"a photo of a {c} {s}" for c, s in classes]), normalize=True)
    image = model.encode_image(to_model_input(torch.from_numpy(pixels)), normalize=True)
    pred = [classes[p] for p in (image @ text.T).argmax(1).tolist()]
    both = np.mean([p == (s.colour, s.shape) for p, s in zip(pred, specs, strict=True)])
    shape = np.mean([p[1] == s.shape for p, s in zip(pred, specs, strict=True)])
    return float(both), float(shape)


def save_fp16(model: torch.nn.Module, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().half() for k, v in model.state_dict().items()}, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--hard", type=float, default=0.5, help="fraction of each batch in shape groups")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy machine)")
    ap.add_argument("--workers", type=int, default=1, help="0 draws batches in the training process")
    ap.add_argument("--out", type=Path, default=CHECKPOINT_PATH)
    ap.add_argument("--eval-every", type=int, default=0, help="check accuracy and save every N steps")
    args = ap.parse_args(argv)

    import open_clip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    register()
    model = open_clip.create_model(MODEL_NAME)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    model.train()
    print(f"{MODEL_NAME}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params", flush=True)

    # Usual CLIP recipe: no weight decay on gains, biases, embeddings or the temperature.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )

    dataset = _Batches(args.seed, args.batch, args.hard)
    if args.workers > 0:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=args.workers, prefetch_factor=2
        )
        batches = iter(loader)
    else:
        batches = iter(dataset)

    start = time.time()
    window_loss, window_acc, window_start = 0.0, 0.0, time.time()
    for step in range(args.steps):
        batch = next(batches)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        image_features = model.encode_image(to_model_input(batch["pixels"]), normalize=True)
        text_features = model.encode_text(batch["tokens"], normalize=True)
        match = match_matrix(batch["specs"], batch["claims"])
        loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale.exp(), match)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
            # Fraction of captions whose best image is one they are true of.
            best = (text_features @ image_features.T).argmax(1)
            window_acc += match[best, torch.arange(len(best))].float().mean().item()
        window_loss += loss.item()
        if (step + 1) % 25 == 0 or step + 1 == args.steps:
            k = 25 if (step + 1) % 25 == 0 else (step + 1) % 25
            print(
                f"step {step + 1:4d}/{args.steps}  loss {window_loss / k:.3f}  t2i-acc {window_acc / k:.3f}  "
                f"scale {model.logit_scale.exp().item():5.1f}  {(time.time() - window_start) / k:.2f}s/step  "
                f"elapsed {time.time() - start:5.0f}s",
                flush=True,
            )
            window_loss, window_acc, window_start = 0.0, 0.0, time.time()
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            model.eval()
            both, shape = quick_accuracy(model, tokenizer, 10_000 + args.seed, n=128)
            model.train()
            save_fp16(model, args.out)
            print(f"  eval: colour x shape {both:.3f}  shape {shape:.3f}  (saved {args.out})", flush=True)

    elapsed = time.time() - start
    model.eval()
    save_fp16(model, args.out)
    print(
        f"trained {args.steps} steps x {args.batch} in {elapsed:.0f}s; saved {args.out} "
        f"({args.out.stat().st_size / 1e6:.1f} MB)",
        flush=True,
    )

    # Reload through open_clip's own pretrained path, as the indexer will, and sanity-check it.
    loaded, _, _ = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=str(args.out))
    loaded.eval()
    both, shape = quick_accuracy(loaded, tokenizer, 10_000 + args.seed)
    print(f"reloaded: zero-shot on 256 fresh images: colour x shape {both:.3f}, shape {shape:.3f}")


if __name__ == "__main__":
    main()
