"""VQGAN+CLIP: optimise a VQGAN latent until CLIP says the decoded image matches the prompt.

The loop, as in Katherine Crowson's notebook and nerdyrodent's generate.py: latent -> snap to the
codebook (straight-through) -> decode -> random augmented cutouts -> CLIP image embeddings -> for each
prompt part, its weighted spherical distance with a stop (prompt_loss) -> plus, with init_weight, an
MSE pull of the latent towards the starting latent -> Adam step -> clamp the latent to the codebook's
range. Every random draw comes from one generator seeded with `options.seed`, so a run is repeatable
on the CPU (GPU kernels may still differ in the last bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from generation.cutouts import CutoutSpec, make_cutouts
from generation.options import (  # noqa: F401 (re-exported: callers import the options from here too)
    MAX_CUTOUTS,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    GenerationCancelled,
    GenerationOptions,
    parse_size,
)
from generation.prompts import (
    MAX_PARTS,
    PromptError,
    WeightedPrompt,
    check_weight,
    parse_prompts,
    split_prompt,
)
from generation.vqgan import VQGAN

ProgressFn = Callable[[int, int, "Image.Image | None"], None]  # (step done, steps, preview or None)
StopFn = Callable[[], bool]
ImageSource = Callable[[int], Image.Image]  # a library image's id -> its RGB picture


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


class _ReplaceGrad(torch.autograd.Function):
    """The value of `forward_value`, the gradient of `backward_value` (which must have its shape)."""

    @staticmethod
    def forward(ctx, forward_value: torch.Tensor, backward_value: torch.Tensor) -> torch.Tensor:
        return forward_value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, grad


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors (2 * arcsin(|a-b|/2)^2); monotone in angle."""
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def prompt_loss(embeds: torch.Tensor, target: torch.Tensor, weight: float, stop: float) -> torch.Tensor:
    """One part's loss, as the references' Prompt module: |w| * mean(sign(w) * distance), where the
    gradient is cut wherever the signed distance lies below `stop` (the value itself is unchanged).

    embeds: (cutouts, D) unit vectors; target: (T, D) unit vectors (1 for text, one per cutout of an
    image prompt); the mean runs over all cutout x target pairs.
    """
    dists = spherical_distance(embeds[:, None, :], target[None, :, :]) * math.copysign(1.0, weight)
    floored = torch.maximum(dists, torch.full_like(dists, stop))
    return abs(weight) * _ReplaceGrad.apply(dists, floored).mean()


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


def to_tensor(image: Image.Image, device) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)[None].to(device)


def open_rgb(path: str | Path) -> Image.Image:
    """An image file as RGB, turned by its EXIF orientation (docs/design.md invariant 8)."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def resize_to_area(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The references' resize_image: keep the aspect ratio, at most the area of `size`."""
    ratio = image.size[0] / image.size[1]
    area = min(image.size[0] * image.size[1], size[0] * size[1])
    new = max(1, round((area * ratio) ** 0.5)), max(1, round((area / ratio) ** 0.5))
    return image.resize(new, Image.Resampling.LANCZOS)


def _initial_latent(vqgan: VQGAN, options: GenerationOptions, generator: torch.Generator) -> torch.Tensor:
    w, h = output_size(vqgan, options)
    f, dev = vqgan.downscale, vqgan.codebook.device
    if options.init_image:
        start = open_rgb(options.init_image).resize((w, h), Image.Resampling.LANCZOS)
        with torch.no_grad():
            return vqgan.encode(to_tensor(start, dev) * 2 - 1)
    n_embed = vqgan.codebook.shape[0]
    tokens = torch.randint(n_embed, (1, h // f, w // f), generator=generator, device=dev)
    return vqgan.codes_to_latent(tokens)


@dataclass
class _Target:
    embeds: torch.Tensor  # (T, D) unit vectors
    weight: float
    stop: float


def _targets(
    encoder,
    clip: _ClipInput,
    parts: list[WeightedPrompt],
    image_prompts: list[tuple[Image.Image, float, float]],
    out_size: tuple[int, int],
    cut_spec: CutoutSpec,
    generator: torch.Generator,
) -> list[_Target]:
    targets: list[_Target] = []
    texts = [p for p in parts if p.image_id is None]
    if texts:
        embeds = torch.from_numpy(encoder.encode_texts([p.text for p in texts])).to(encoder.device).float()
        targets += [_Target(embeds[i : i + 1], p.weight, p.stop) for i, p in enumerate(texts)]
    # An image prompt is its own augmented cutouts' embeddings, as in the references (resize_image,
    # then make_cutouts), so the image is a target at the same scales the generated one is seen at.
    for image, weight, stop in image_prompts:
        pixels = to_tensor(resize_to_area(image, out_size), encoder.device)
        with torch.no_grad():
            embeds = clip.embed(make_cutouts(pixels, cut_spec, generator))
        targets.append(_Target(embeds, weight, stop))
    return targets


def _image_prompts(
    parts: list[WeightedPrompt], options: GenerationOptions, image_source: ImageSource | None
) -> list[tuple[Image.Image, float, float]]:
    found = []
    for p in parts:
        if p.image_id is None:
            continue
        if image_source is None:
            raise PromptError(f"{p.text!r} names a library image, which only works inside a library")
        found.append((image_source(p.image_id), p.weight, p.stop))
    for spec in options.image_prompts:
        path, weight, stop = split_prompt(spec)
        check_weight(weight, stop, path)
        if not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"image prompt {path} does not exist")
        found.append((open_rgb(Path(path).expanduser()), weight, stop))
    if len(parts) - len([p for p in parts if p.image_id is not None]) + len(found) > MAX_PARTS:
        raise PromptError(f"more than {MAX_PARTS} prompt parts (text and images together)")
    return found


def generate_image(
    encoder,
    vqgan: VQGAN,
    prompt: str,
    options: GenerationOptions,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    image_source: ImageSource | None = None,
) -> Image.Image:
    """Run the optimisation; raises GenerationCancelled when should_stop() turns true.

    `options.seed` None draws a random seed (call options.resolved() first to know it). `image_source`
    turns the `#ID` parts of the prompt into pictures.
    """
    options = options.resolved()
    device = vqgan.codebook.device
    generator = torch.Generator(device=device).manual_seed(options.seed)
    parts = parse_prompts(prompt)
    images = _image_prompts(parts, options, image_source)
    clip = _ClipInput(encoder)
    cut_spec = CutoutSpec(
        count=options.cutouts, size=encoder.image_size, cut_pow=options.cut_pow, augments=options.augments
    )
    z = _initial_latent(vqgan, options, generator).detach().clone()
    z_start = z.clone()
    z.requires_grad_(True)
    targets = _targets(encoder, clip, parts, images, output_size(vqgan, options), cut_spec, generator)
    # Per-channel bounds of the codebook: a latent outside them only drifts further from every code.
    z_min = vqgan.codebook.min(dim=0).values.view(1, -1, 1, 1)
    z_max = vqgan.codebook.max(dim=0).values.view(1, -1, 1, 1)
    optimiser = torch.optim.Adam([z], lr=options.lr)

    for step in range(1, options.steps + 1):
        if should_stop is not None and should_stop():
            raise GenerationCancelled(f"stopped after {step - 1} of {options.steps} steps")
        decoded = vqgan.decode(vqgan.quantize_straight_through(z))
        image = _ClampWithGrad.apply(decoded.add(1).div(2))
        embeds = clip.embed(make_cutouts(image, cut_spec, generator).to(encoder.device))
        # A negative weight turns distance into reward: the image is pushed away from that part.
        loss = sum(prompt_loss(embeds, t.embeds, t.weight, t.stop) for t in targets)
        if options.init_weight:
            loss = loss + F.mse_loss(z, z_start) * options.init_weight / 2
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
    params["image_prompts"] = [Path(split_prompt(p)[0]).name for p in params["image_prompts"]]
    return params
