"""Train the tiny VQGAN shipped for tests and the demo (about 3 minutes on 2 CPU cores).

    python -m generation.tiny_vqgan.train [--seconds 170]

It learns to reconstruct toy-world images (indexer/toyworld.py: coloured shapes on plain backgrounds),
the same world the toy CLIP was trained on, so VQGAN+CLIP with the two can actually draw what a toy
prompt asks for. Plain reconstruction (L1 + MSE) and the VQ-VAE codebook/commitment losses; taming's
perceptual and adversarial losses are left out (they need pretrained VGG weights, and sharpness does
not matter at 64 px). Dead codes are restarted on random encoder outputs so the small codebook is used.
Writes tiny_vqgan.ckpt as {"state_dict": fp16 tensors}, the layout of taming's checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from generation.vqgan import TINY_CHECKPOINT, TINY_CONFIG, VQGAN, VQGANConfig, nearest_code

COMMITMENT = 0.25  # VQ-VAE's beta
RESTART_EVERY = 20  # steps between dead-code restarts
AUTOENCODER_SHARE = 0.5  # of the time budget, spent before the quantiser is switched on


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


def train(seconds: float, batch: int, crop: int, seed: int, out: Path) -> None:
    """Autoencoder first (no bottleneck: it learns fast), then k-means the encoder outputs into the
    codebook and fine-tune through the quantiser. Starting VQ training from a random codebook wastes
    most of a short budget on dead codes."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = VQGANConfig.from_yaml(TINY_CONFIG)
    model = VQGAN(cfg)
    images = toy_images(1024, cfg.ddconfig["resolution"], seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    usage = torch.zeros(cfg.n_embed)
    start = time.monotonic()
    step, quantising = 0, False
    while (elapsed := time.monotonic() - start) < seconds:
        step += 1
        if not quantising and elapsed > AUTOENCODER_SHARE * seconds:
            quantising = True
            with torch.no_grad():
                z = model.quant_conv(model.encoder(images[:64]))
                points = z.permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
                model.codebook.copy_(kmeans(points, cfg.n_embed, 10, gen))
        x = random_crops(images, batch, crop, gen)
        z = model.quant_conv(model.encoder(x))
        vq_loss = torch.zeros(())
        if quantising:
            codes = nearest_code(z, model.codebook)
            z_q = model.codes_to_latent(codes)
            vq_loss = F.mse_loss(z_q, z.detach()) + COMMITMENT * F.mse_loss(z, z_q.detach())
            usage += torch.bincount(codes.flatten(), minlength=cfg.n_embed)
            z = z + (z_q - z).detach()
        recon = model.decode(z)
        rec_loss = (recon - x).abs().mean() + F.mse_loss(recon, x)
        optimiser.zero_grad()
        (rec_loss + vq_loss).backward()
        optimiser.step()
        if step % RESTART_EVERY == 0:
            dead = (usage == 0).nonzero().flatten() if quantising else torch.zeros(0, dtype=torch.long)
            if len(dead):
                flat = z.detach().permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
                with torch.no_grad():
                    model.codebook[dead] = flat[torch.randint(len(flat), (len(dead),), generator=gen)]
            print(f"step {step} {elapsed:.0f}s rec {rec_loss.item():.4f} vq {vq_loss.item():.4f} "
                  f"dead codes {len(dead)}", flush=True)  # fmt: skip
            usage.zero_()
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "global_step": step}, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {step} steps, {elapsed:.0f}s")


@click.command()
@click.option("--seconds", default=170.0, help="Training time budget.")
@click.option("--batch", default=16)
@click.option("--crop", default=32, help="Train on random crops of this side (the model is convolutional).")
@click.option("--seed", default=0)
@click.option("--out", type=click.Path(path_type=Path), default=TINY_CHECKPOINT)
def main(seconds: float, batch: int, crop: int, seed: int, out: Path) -> None:
    torch.set_num_threads(2)
    train(seconds, batch, crop, seed, out)


if __name__ == "__main__":
    main()
