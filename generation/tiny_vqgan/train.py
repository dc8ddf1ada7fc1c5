"""Train the tiny VQGAN shipped for tests and the demo (about 2 minutes on one CPU core).

    python -m generation.tiny_vqgan.train [--steps 400]

It learns to reconstruct toy-world images (indexer/toyworld.py: coloured shapes on plain backgrounds),
the same world the toy CLIP was trained on, so VQGAN+CLIP with the two can actually draw what a toy
prompt asks for. Plain reconstruction (L1 + MSE) and the VQ-VAE codebook/commitment losses; taming's
perceptual and adversarial losses are left out (they need pretrained VGG weights, and sharpness does
not matter at 64 px). Dead codes are restarted on random encoder outputs so the small codebook is used.
Writes tiny_vqgan.ckpt as {"state_dict": fp16 tensors}, the layout of taming's checkpoints.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from generation.vqgan import TINY_CHECKPOINT, TINY_CONFIG, VQGAN, VQGANConfig, nearest_code

COMMITMENT = 0.25  # VQ-VAE's beta
PEAK_LR = 4e-3
RESTART_EVERY = 20  # steps between dead-code restarts
AUTOENCODER_SHARE = 0.5  # of the steps, spent before the quantiser is switched on


def toy_images(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) toy-world images in [-1, 1]."""
    from indexer import toyworld

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(toyworld.render(toyworld.sample_spec(rng), (size, size), rng)) for _ in range(n)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def random_crops(images: torch.Tensor, batch: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(len(images), (batch,), generator=gen)
    side = images.shape[-1]
    offs = torch.randint(side - crop + 1, (batch, 2), generator=gen).tolist()
    pairs = zip(idx.tolist(), offs, strict=True)
    out = torch.stack([images[i, :, y : y + crop, x : x + crop] for i, (y, x) in pairs])
    flip = torch.rand(batch, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def kmeans(points: torch.Tensor, k: int, iterations: int, gen: torch.Generator) -> torch.Tensor:
    centres = points[torch.randperm(len(points), generator=gen)[:k]].clone()
    for _ in range(iterations):
        assign = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).clamp_min(1).unsqueeze(1)
        centres = torch.where(counts > 1, sums / counts, centres)
    return centres


def train(steps: int, batch: int, image_size: int, crop: int, seed: int, out: Path) -> None:
    """Autoencoder first (no bottleneck: it learns fast), then k-means the encoder outputs into the
    codebook and fine-tune through the quantiser. Starting VQ training from a random codebook wastes
    most of a short budget on dead codes."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = VQGANConfig.from_yaml(TINY_CONFIG)
    model = VQGAN(cfg)
    images = toy_images(1024, image_size, seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=PEAK_LR)
    usage = torch.zeros(cfg.n_embed)
    start = time.monotonic()
    quantising = False
    for step in range(1, steps + 1):
        if not quantising and step > AUTOENCODER_SHARE * steps:
            quantising = True
            with torch.no_grad():
                z = model.quant_conv(model.encoder(images[:64]))
                points = z.permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
                model.codebook.copy_(kmeans(points, cfg.n_embed, 10, gen))
        x = random_crops(images, batch, crop or image_size, gen)
        z_e = model.quant_conv(model.encoder(x))
        z, vq_loss = z_e, torch.zeros(())
        if quantising:
            codes = nearest_code(z_e, model.codebook)
            z_q = model.codes_to_latent(codes)
            vq_loss = F.mse_loss(z_q, z_e.detach()) + COMMITMENT * F.mse_loss(z_e, z_q.detach())
            usage += torch.bincount(codes.flatten(), minlength=cfg.n_embed)
            z = z_e + (z_q - z_e).detach()
        recon = model.decode(z)
        rec_loss = (recon - x).abs().mean() + F.mse_loss(recon, x)
        for group in optimiser.param_groups:  # cosine decay: a short run still ends on a fine step size
            group["lr"] = PEAK_LR * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimiser.zero_grad()
        (rec_loss + vq_loss).backward()
        optimiser.step()
        if step % RESTART_EVERY == 0:
            dead = (usage == 0).nonzero().flatten() if quantising else torch.zeros(0, dtype=torch.long)
            if len(dead):
                flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
                with torch.no_grad():
                    model.codebook[dead] = flat[torch.randint(len(flat), (len(dead),), generator=gen)]
            elapsed = time.monotonic() - start
            print(f"step {step} {elapsed:.0f}s rec {rec_loss.item():.4f} vq {vq_loss.item():.4f} "
                  f"dead codes {len(dead)}", flush=True)  # fmt: skip
            usage.zero_()
    model.eval()
    with torch.no_grad():  # held-out images at the config's resolution, through the real quantiser
        held_out = toy_images(32, cfg.ddconfig["resolution"], seed + 1)
        recon = model.decode(model.encode(held_out)).clamp(-1, 1)
    mae = (recon - held_out).abs().mean().item() * 127.5
    print(f"held-out reconstruction error: {mae:.1f} / 255 per channel (mean absolute)")
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "global_step": step}, out)
    took = time.monotonic() - start
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {steps} steps in {took:.0f}s")


@click.command()
@click.option("--steps", default=400, show_default=True, help="The shipped checkpoint: 400 steps.")
@click.option("--batch", default=12, show_default=True)
@click.option(
    "--image-size",
    default=32,
    show_default=True,
    help="Side of the toy images trained on. The model is convolutional: flat colours and edges "
    "look alike at any scale, so it also draws at 64 px and more, at a quarter of the cost.",
)
@click.option("--crop", default=0, help="Train on random crops of this side (0: whole images).")
@click.option("--seed", default=0)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    help="torch threads (1: 0.3 s/step; 2 stall on a busy box).",
)
@click.option("--out", type=click.Path(path_type=Path), default=TINY_CHECKPOINT)
def main(steps: int, batch: int, image_size: int, crop: int, seed: int, threads: int, out: Path) -> None:
    torch.set_num_threads(threads)
    train(steps, batch, image_size, crop, seed, out)


if __name__ == "__main__":
    main()
