"""VQGAN+CLIP image generation; the images land in the library and are indexed like any photo.

Modules: taming (the VQGAN encoder/decoder), vqgan (config + checkpoint loading), checkpoint (reading
lightning .ckpt files safely), prompts, cutouts, optimize (the loop), output (PNG with text chunks),
jobs (the searchd worker), cli (`photoseek generate`).

The names below are imported on first use, so `import generation.cli` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GenerationCancelled": "generation.optimize",
    "GenerationOptions": "generation.optimize",
    "generate_image": "generation.optimize",
    "save_generated": "generation.output",
    "read_generation_info": "generation.output",
    "VQGAN": "generation.vqgan",
    "load_vqgan": "generation.vqgan",
    "load_default_vqgan": "generation.vqgan",
    "JobRunner": "generation.jobs",
    "generate": "generation.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'generation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
