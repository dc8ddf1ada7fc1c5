"""Random cutouts of the image being generated, augmented, at the CLIP tower's input size.

CLIP sees many crops of different sizes and positions instead of the whole image once: the gradient
then asks every region to look like the prompt at several scales, and the augmentations (flips, a
small affine warp, colour jitter, noise) keep the optimiser from fitting one exact pixel grid, which is
how adversarial noise instead of a picture would satisfy the loss. Plain torch, so it runs on any device
and is deterministic on the CPU given the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CutoutSpec:
    count: int = 32
    size: int = 224  # CLIP's input side
    cut_pow: float = 1.0  # >1 favours small cutouts (detail), <1 large ones (composition)
    max_degrees: float = 10.0
    max_translate: float = 0.05  # fraction of the cutout
    scale_jitter: float = 0.05
    colour_jitter: float = 0.05  # brightness / contrast / saturation, each +- this
    noise: float = 0.1  # per-cutout gaussian noise up to this sigma


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
    batch = torch.cat(cuts)
    return augment(batch, spec, generator)


def augment(batch: torch.Tensor, spec: CutoutSpec, generator: torch.Generator) -> torch.Tensor:
    n, dev = batch.shape[0], batch.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=dev) * 2 - 1

    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)

    angle = uniform(n) * math.radians(spec.max_degrees)
    scale = 1 + uniform(n) * spec.scale_jitter
    shift = uniform(n, 2) * spec.max_translate * 2  # affine_grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=False)
    # "reflection" rather than zeros: black corners would be a feature CLIP could latch onto.
    batch = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    j = spec.colour_jitter
    brightness = 1 + uniform(n, 1, 1, 1) * j
    contrast = 1 + uniform(n, 1, 1, 1) * j
    saturation = 1 + uniform(n, 1, 1, 1) * j
    batch = batch * brightness
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    batch = (batch - mean) * contrast + mean
    grey = batch.mean(dim=1, keepdim=True)
    batch = (batch - grey) * saturation + grey

    sigma = torch.rand(n, 1, 1, 1, generator=generator, device=dev) * spec.noise
    noise = torch.randn(batch.shape, generator=generator, device=dev, dtype=batch.dtype)
    # No clamp: it would zero the gradient of every pixel the noise pushed past 0 or 1.
    return batch + noise * sigma
