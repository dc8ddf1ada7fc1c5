"""Which VQGAN a spec names, without loading it (no torch: searchd describes it at start-up).

A spec is `CONFIG.yaml,MODEL.ckpt` (a taming-transformers VQGAN), `CONFIG.yaml` alone (random weights,
benchmarks only), or empty: the tiny toy-world VQGAN shipped for demos and tests.
"""

from __future__ import annotations

from pathlib import Path

from indexer.errors import BadInput

TINY_DIR = Path(__file__).parent / "tiny_vqgan"
TINY_CONFIG = TINY_DIR / "tiny_vqgan.yaml"
TINY_CHECKPOINT = TINY_DIR / "tiny_vqgan.ckpt"
TINY_LABEL = "tiny-toyworld"  # 256 codes trained on drawn shapes: for demos and tests, not for pictures


class VQGANConfigError(BadInput):
    """The config or checkpoint is not a taming-transformers VQGAN we can load; the message says why."""


def vqgan_label(config: Path, checkpoint: Path | None) -> str:
    """What a generated PNG records as its VQGAN: the two file names, never their private paths."""
    return f"{config.name},{checkpoint.name if checkpoint else 'random'}"


def parse_vqgan_spec(spec: str) -> tuple[Path, Path | None]:
    """`CONFIG.yaml,MODEL.ckpt` (or just CONFIG.yaml for random weights) -> paths, checked to exist."""
    config, _, ckpt = (p.strip() for p in spec.partition(","))
    paths = [Path(config).expanduser()] + ([Path(ckpt).expanduser()] if ckpt else [])
    for path in paths:
        if not path.is_file():
            raise VQGANConfigError(
                f"VQGAN file {path} does not exist; pass --vqgan CONFIG.yaml,MODEL.ckpt "
                "(for example vqgan_imagenet_f16_16384.yaml,vqgan_imagenet_f16_16384.ckpt)"
            )
    return paths[0], (paths[1] if ckpt else None)


TOY_NOTE = (
    "the tiny toy-world VQGAN shipped with photoseek (256 codes, trained on drawn shapes): only for demos "
    "and tests. For real pictures run `photoseek fetch-vqgan` on a machine with internet and set vqgan"
)


def describe_vqgan(spec: str | None) -> dict[str, object]:
    """Which VQGAN a spec means, without loading it: what the page and /api show (file names only)."""
    if not spec:
        return {"label": TINY_LABEL, "config": TINY_CONFIG.name, "checkpoint": TINY_CHECKPOINT.name,
                "toy": True, "note": TOY_NOTE}  # fmt: skip
    config, checkpoint = parse_vqgan_spec(spec)
    return {
        "label": vqgan_label(config, checkpoint),
        "config": config.name,
        "checkpoint": checkpoint.name if checkpoint else None,
        "toy": False,
        "note": "a taming-transformers VQGAN"
        + ("" if checkpoint else " with random weights (benchmarks only)"),
    }
