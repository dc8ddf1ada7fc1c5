"""CUDA-only figures: fp16 towers at large batches, and the ceiling of JPEG decoding on the GPU
(nvJPEG through torchvision, then indexer.gpu_decode's resize) with the files already in memory.

Everything here needs CUDA; bench.run skips it (and says so in RESULTS.md) on a machine without.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from indexer.encoder import Encoder
from indexer.gpu_decode import GpuJpegDecoder

GPU_MODELS = ("ViT-B-32:random", "ViT-B-32-256:random", "ViT-B-16:random")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def nvjpeg_ceiling(folder: Path, encoder: Encoder, batch_size: int, limit: int) -> dict[str, float]:
    """Images/s of nvJPEG decode alone, decode + resize, and decode + resize + embed, over JPEG bytes
    already in memory: what the GPU side can take when the CPU side keeps up."""
    datas = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:limit]]
    gpu = GpuJpegDecoder(encoder.image_size)

    def run(stage: int) -> float:
        torch.cuda.synchronize()
        started = time.perf_counter()
        for start in range(0, len(datas), batch_size):
            images = gpu.decode(datas[start : start + batch_size])
            if stage >= 1:
                pixels = gpu.fit(images)  # type: ignore[arg-type]
            if stage >= 2:
                encoder.encode_pixels(pixels)
        torch.cuda.synchronize()
        return len(datas) / (time.perf_counter() - started)

    run(2)  # warm-up: nvJPEG handles, kernels
    return {"decode": run(0), "decode + resize": run(1), "decode + resize + embed": run(2)}
