"""VQGAN+CLIP: optimise a VQGAN latent until CLIP says the decoded image matches the prompt.

The loop: latent -> snap to the codebook (straight-through) -> decode -> random augmented cutouts ->
CLIP image embeddings -> spherical distance to each weighted prompt embedding -> Adam step on the
latent -> clamp it to the codebook's range. Every random draw comes from one generator seeded with
`options.seed`, so a run is repeatable on the CPU (GPU kernels may still differ in the last bits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from generation.cutouts import CutoutSpec, make_cutouts
from generation.prompts import parse_prompts
from generation.vqgan import VQGAN

ProgressFn = Callable[[int, int, "Image.Image | None"], None]  # (step done, steps, preview or None)
StopFn = Callable[[], bool]
MAX_SIDE = 2048  # larger requests are refused: memory grows with the square of the side


class GenerationCancelled(Exception):
    """should_stop() returned True; raised between two steps."""


@dataclass(frozen=True)
class GenerationOptions:
    width: int = 256
    height: int = 256
    steps: int = 300
    seed: int = 0
    cutouts: int = 32
    lr: float = 0.1
    cut_pow: float = 1.0
    init_image: str | None = None  # path of a start image (encoded by the VQGAN)
    init_weight: float = 0.0  # >0 also pulls the CLIP embedding towards the init image's
    preview_every: int = 0  # 0: no previews

    def __post_init__(self) -> None:
        if not (8 <= self.width <= MAX_SIDE and 8 <= self.height <= MAX_SIDE):
            raise ValueError(f"size {self.width}x{self.height} must be within 8..{MAX_SIDE} per side")
        if self.steps < 1 or self.cutouts < 1 or self.lr <= 0 or self.preview_every < 0:
            raise ValueError("steps and cutouts must be >= 1, lr > 0 and preview_every >= 0")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerationOptions:
        """Options from JSON-ish params; "size" may be "WxH" or [W, H]. Unknown keys are refused."""
        params = dict(params)
        if "size" in params:
            params["width"], params["height"] = parse_size(params.pop("size"))
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown generation parameter(s): {', '.join(unknown)}")
        casts = {"int": int, "float": float}
        values = {k: casts.get(str(known[k].type), lambda v: v)(v) for k, v in params.items()}
        return cls(**values)

    def to_params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_size(size: str | list | tuple) -> tuple[int, int]:
    if isinstance(size, str):
        w, sep, h = size.lower().partition("x")
        if not sep:
            raise ValueError(f"size {size!r} is not WxH, e.g. 256x256")
        return int(w), int(h)
    w, h = size
    return int(w), int(h)


def output_size(vqgan: VQGAN, options: GenerationOptions) -> tuple[int, int]:
    """The size actually made: rounded down to whole latent tokens (multiples of the VQGAN's f)."""
    f = vqgan.downscale
    return max(1, options.width // f) * f, max(1, options.height // f) * f


class _ClampWithGrad(torch.autograd.Function):
    """Clamp to [0, 1], but let a gradient through where following it moves the pixel back in range.

    A plain clamp has zero gradient outside the range, so a saturated pixel could never recover.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (grad * (x - x.clamp(0, 1)) >= 0)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors (2 * arcsin(|a-b|/2)^2); monotone in angle."""
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class _ClipInput:
    """CLIP's pixel normalisation as plain differentiable torch (encoder.normalize_pixels is uint8)."""

    def __init__(self, encoder) -> None:
        visual = encoder.model.visual
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.mean = torch.tensor(mean, device=encoder.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=encoder.device).view(1, 3, 1, 1)
        self.model = encoder.model
        self.dtype = encoder.dtype

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        x = ((pixels - self.mean) / self.std).to(self.dtype)
        feats = self.model.encode_image(x).float()
        return feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> RGB PIL image."""
    arr = image.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def _initial_latent(vqgan: VQGAN, options: GenerationOptions, generator: torch.Generator) -> torch.Tensor:
    w, h = output_size(vqgan, options)
    f, dev = vqgan.downscale, vqgan.codebook.device
    if options.init_image:
        with Image.open(options.init_image) as im:
            start = im.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        x = torch.from_numpy(np.asarray(start, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            return vqgan.encode(x.to(dev))
    n_embed = vqgan.codebook.shape[0]
    tokens = torch.randint(n_embed, (1, h // f, w // f), generator=generator, device=dev)
    return vqgan.codes_to_latent(tokens)


def _targets(encoder, prompt: str, options: GenerationOptions) -> tuple[torch.Tensor, torch.Tensor]:
    parts = parse_prompts(prompt)
    embeds = [torch.from_numpy(encoder.encode_texts([p.text for p in parts]))]
    weights = [p.weight for p in parts]
    if options.init_image and options.init_weight > 0:
        with Image.open(options.init_image) as im:
            embeds.append(torch.from_numpy(encoder.encode_images([im.convert("RGB")])))
        weights.append(options.init_weight)
    return torch.cat(embeds).to(encoder.device), torch.tensor(weights, device=encoder.device)


def generate_image(
    encoder,
    vqgan: VQGAN,
    prompt: str,
    options: GenerationOptions,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> Image.Image:
    """Run the optimisation; raises GenerationCancelled when should_stop() turns true."""
    device = vqgan.codebook.device
    generator = torch.Generator(device=device).manual_seed(options.seed)
    targets, weights = _targets(encoder, prompt, options)
    clip = _ClipInput(encoder)
    cut_spec = CutoutSpec(count=options.cutouts, size=encoder.image_size, cut_pow=options.cut_pow)

    z = _initial_latent(vqgan, options, generator).detach().clone().requires_grad_(True)
    # Per-channel bounds of the codebook: a latent outside them only drifts further from every code.
    z_min = vqgan.codebook.min(dim=0).values.view(1, -1, 1, 1)
    z_max = vqgan.codebook.max(dim=0).values.view(1, -1, 1, 1)
    optimiser = torch.optim.Adam([z], lr=options.lr)

    for step in range(1, options.steps + 1):
        if should_stop is not None and should_stop():
            raise GenerationCancelled(f"stopped after {step - 1} of {options.steps} steps")
        decoded = vqgan.decode(vqgan.quantize_straight_through(z))
        image = _ClampWithGrad.apply(decoded.add(1).div(2))
        cuts = make_cutouts(image, cut_spec, generator).to(encoder.device)
        dist = spherical_distance(clip.embed(cuts)[:, None, :], targets[None, :, :])  # (cutouts, prompts)
        # A negative weight turns distance into reward: the image is pushed away from that text.
        loss = (dist.mean(dim=0) * weights).sum()
        # autograd.grad, not backward(): the CLIP model may be shared with searchd, and its
        # parameters must not collect .grad (nor pay for computing it).
        (z.grad,) = torch.autograd.grad(loss, [z])
        optimiser.step()
        with torch.no_grad():
            z.copy_(torch.maximum(torch.minimum(z, z_max), z_min))
        if progress is not None:
            show = options.preview_every and (step % options.preview_every == 0 or step == options.steps)
            progress(step, options.steps, to_pil(image) if show else None)

    with torch.no_grad():
        final = vqgan.decode(vqgan.quantize_straight_through(z)).add(1).div(2)
    return to_pil(final)


def record_params(options: GenerationOptions, encoder, vqgan: VQGAN) -> dict[str, Any]:
    """What to store with an image so it can be made again: options, output size and both models."""
    width, height = output_size(vqgan, options)
    params = options.to_params()
    # The identity label ("photoseek-toy:toyworld", "ViT-B-32-256:datacomp_s34b_b86k"), not the spec,
    # which may hold a local weights path.
    params.update(output_width=width, output_height=height, clip=encoder.identity.label, vqgan=vqgan.label)
    if params["init_image"]:
        params["init_image"] = Path(params["init_image"]).name  # the name only: no private paths
    return params


def load_init_path(path: str | Path | None) -> str | None:
    """Validate an init image path early, with a message that names it."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"init image {p} does not exist")
    return str(p)
