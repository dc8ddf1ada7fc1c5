"""CUDA-only figures: fp16 towers at large batches, and JPEG decoding on the GPU (nvJPEG through
torchvision.io.decode_jpeg) feeding the model without the images ever visiting host memory as pixels.

Everything here needs CUDA; bench.run skips it (and says so in RESULTS.md) on a machine without.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from indexer.encoder import Encoder

GPU_MODELS = ("ViT-B-32:random", "ViT-B-32-256:random", "ViT-B-16:random")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def gpu_fit_square(images: list[torch.Tensor], size: int) -> torch.Tensor:
    """fit_square on the GPU: shortest side to `size` (bicubic, antialiased), centre crop; NHWC uint8."""
    out = []
    for img in images:  # CHW uint8 on the GPU
        _, h, w = img.shape
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(
            img[None].float(), size=(nh, nw), mode="bicubic", antialias=True, align_corners=False
        )
        top, left = (nh - size) // 2, (nw - size) // 2
        out.append(x[0, :, top : top + size, left : left + size].clamp_(0, 255).to(torch.uint8))
    return torch.stack(out).permute(0, 2, 3, 1).contiguous()


def gpu_decode_rate(folder: Path, encoder: Encoder, batch_size: int, limit: int) -> tuple[float, float]:
    """(decode-only images/s, decode + embed images/s) with nvJPEG; files are read from disk each pass."""
    from torchvision.io import decode_jpeg

    files = sorted(folder.glob("*.jpg"))[:limit]

    def run(embed: bool) -> float:
        torch.cuda.synchronize()
        started = time.perf_counter()
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            datas = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in chunk]
            imgs = decode_jpeg(datas, device="cuda", apply_exif_orientation=True)
            pixels = gpu_fit_square(imgs, encoder.image_size)
            if embed:
                encoder.encode_pixels(pixels)
        torch.cuda.synchronize()
        return len(files) / (time.perf_counter() - started)

    run(True)  # warm-up: nvJPEG handles, kernels
    return run(False), run(True)
