"""Random cutouts of the image being generated, augmented, at the CLIP tower's input size.

CLIP sees many crops of different sizes and positions instead of the whole image once: the gradient
then asks every region to look like the prompt at several scales, and the augmentations keep the
optimiser from fitting one exact pixel grid, which is how adversarial noise instead of a picture
would satisfy the loss.

Crops follow Katherine Crowson's MakeCutouts (side = rand**cut_pow between CLIP's input size and the
image's short side). The augmentations are nerdyrodent's generate.py's kornia ones, with the same
parameters and probabilities, chosen by the same two-letter codes (its default is Af,Pe,Ji,Er; ours
adds Sh), then per-cutout gaussian noise up to sigma 0.1 as in both references. Crop positions and
noise come from the job's generator; kornia draws from torch's global RNG, so each call runs in a
forked RNG seeded from that generator: a run is repeatable and touches no other thread's RNG state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from generation.augments import AUGMENT_CODES, DEFAULT_AUGMENTS, parse_augments  # noqa: F401 (re-exported)

NOISE = 0.1  # per-cutout gaussian noise, sigma drawn uniformly from [0, NOISE]


@dataclass(frozen=True)
class CutoutSpec:
    count: int = 32
    size: int = 224  # CLIP's input side
    cut_pow: float = 1.0  # >1 favours small cutouts (detail), <1 large ones (composition)
    augments: str = DEFAULT_AUGMENTS  # comma-separated codes of AUGMENT_CODES; "" or "none": none
    noise: float = NOISE


@lru_cache(maxsize=8)
def augmentation(codes: tuple[str, ...]) -> nn.Module:
    import kornia.augmentation as K  # only generation needs kornia; keep it out of other imports

    make = {
        "Af": lambda: K.RandomAffine(
            degrees=15, translate=0.1, shear=5, p=0.7, padding_mode="zeros", keepdim=True
        ),
        "Pe": lambda: K.RandomPerspective(distortion_scale=0.7, p=0.7),
        "Ji": lambda: K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, p=0.7),
        "Sh": lambda: K.RandomSharpness(sharpness=0.3, p=0.5),
        "Er": lambda: K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), same_on_batch=True, p=0.7),
        "Ro": lambda: K.RandomRotation(degrees=15, p=0.7),
        "Fl": lambda: K.RandomHorizontalFlip(p=0.5),
    }
    return nn.Sequential(*(make[c]() for c in codes))


def make_cutouts(image: torch.Tensor, spec: CutoutSpec, generator: torch.Generator) -> torch.Tensor:
    """(1, 3, H, W) image in [0, 1] -> (count, 3, size, size) augmented cutouts, differentiable."""
    _, _, h, w = image.shape
    max_side = min(h, w)
    min_side = min(max_side, spec.size)
    # Every random draw comes from `generator`, on the image's device, in a fixed order.
    dev = image.device
    sizes = torch.rand(spec.count, generator=generator, device=dev).pow(spec.cut_pow)
    sizes = (sizes * (max_side - min_side) + min_side).long().tolist()
    corners = torch.rand(spec.count, 2, generator=generator, device=dev).tolist()
    cuts = []
    for side, (fx, fy) in zip(sizes, corners, strict=True):
        x0, y0 = int(fx * (w - side + 1)), int(fy * (h - side + 1))
        crop = image[:, :, y0 : y0 + side, x0 : x0 + side]
        # Area-average when shrinking (no aliasing), bilinear when a small image is enlarged.
        if side >= spec.size:
            cuts.append(F.adaptive_avg_pool2d(crop, spec.size))
        else:
            cuts.append(F.interpolate(crop, size=spec.size, mode="bilinear", align_corners=False))
    return augment(torch.cat(cuts), spec, generator)


def augment(batch: torch.Tensor, spec: CutoutSpec, generator: torch.Generator) -> torch.Tensor:
    n, dev = batch.shape[0], batch.device
    codes = parse_augments(spec.augments)
    if codes:
        seed = int(torch.randint(2**62, (1,), generator=generator, device=dev).item())
        devices = (
            [dev.index if dev.index is not None else torch.cuda.current_device()]
            if dev.type == "cuda"
            else []
        )
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            batch = augmentation(codes)(batch)
    sigma = torch.rand(n, 1, 1, 1, generator=generator, device=dev) * spec.noise
    noise = torch.randn(batch.shape, generator=generator, device=dev, dtype=batch.dtype)
    # No clamp: it would zero the gradient of every pixel the noise pushed past 0 or 1.
    return batch + noise * sigma
