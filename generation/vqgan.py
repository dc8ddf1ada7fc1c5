"""A VQGAN in taming-transformers' checkpoint format: a `.yaml` config plus a `.ckpt`.

`load_vqgan("vqgan_imagenet_f16_16384.yaml", "vqgan_imagenet_f16_16384.ckpt")` gives a frozen model
with the three things VQGAN+CLIP needs: the codebook, `encode` (for init images) and `decode`.
The parameter names are taming's (`encoder.*`, `decoder.*`, `quant_conv.*`, `post_quant_conv.*`,
`quantize.embedding.weight`, or `quantize.embed.weight` + `quantize.proj.*` for Gumbel VQ), so a
published `state_dict` loads as it is; its `loss.*` keys (the training discriminator and LPIPS) are
dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from generation.checkpoint import read_state_dict
from generation.taming import Decoder, Encoder
from generation.vqgan_spec import (  # noqa: F401 (re-exported: the spec side lives there)
    TINY_CHECKPOINT,
    TINY_CONFIG,
    TINY_DIR,
    TINY_LABEL,
    TOY_NOTE,
    VQGANConfigError,
    describe_vqgan,
    parse_vqgan_spec,
    vqgan_label,
)

VQ_TARGET = "taming.models.vqgan.VQModel"
GUMBEL_TARGET = "taming.models.vqgan.GumbelVQ"
IGNORED_PREFIXES = ("loss.",)  # discriminator / perceptual-loss weights saved by the trainer
_DDCONFIG_KEYS = ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "in_channels", "out_ch",
                  "resolution", "z_channels")  # fmt: skip


@dataclass(frozen=True)
class VQGANConfig:
    ddconfig: dict[str, Any]
    embed_dim: int
    n_embed: int
    gumbel: bool = False

    @classmethod
    def from_yaml(cls, path: Path) -> VQGANConfig:
        import yaml  # only needed here; keeps `import generation` light

        with Path(path).open() as f:
            doc = yaml.safe_load(f)
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: dict, source: str = "config") -> VQGANConfig:
        model = (doc or {}).get("model", doc) or {}
        target = model.get("target", VQ_TARGET)
        if target not in (VQ_TARGET, GUMBEL_TARGET):
            raise VQGANConfigError(
                f"{source}: model.target is {target!r}; only {VQ_TARGET} and {GUMBEL_TARGET} "
                "(the first-stage VQGAN configs published with taming-transformers) are supported"
            )
        params = model.get("params", {})
        dd = dict(params.get("ddconfig", {}))
        missing = [k for k in (*_DDCONFIG_KEYS, "embed_dim", "n_embed") if k not in dd and k not in params]
        if missing:
            raise VQGANConfigError(f"{source}: model.params(.ddconfig) lacks {', '.join(missing)}")
        return cls(dd, int(params["embed_dim"]), int(params["n_embed"]), gumbel=target == GUMBEL_TARGET)

    def to_dict(self) -> dict:
        """The structure of taming's published yaml files (what from_dict reads back)."""
        params: dict[str, Any] = {"embed_dim": self.embed_dim, "n_embed": self.n_embed}
        params["ddconfig"] = dict(self.ddconfig)
        return {"model": {"target": GUMBEL_TARGET if self.gumbel else VQ_TARGET, "params": params}}

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.ddconfig["ch_mult"]) - 1)


class VectorQuantizer(nn.Module):
    """taming's VectorQuantizer, reduced to its codebook (training losses are not needed here)."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding.weight

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        return nearest_code(z, self.codebook)


class GumbelQuantizer(nn.Module):
    """taming's GumbelQuantize: logits from a 1x1 conv pick the code. Deterministic argmax here."""

    def __init__(self, z_channels: int, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(z_channels, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embed_dim)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embed.weight

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(z).argmax(dim=1)


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) latents -> (B, h, w) indices of the nearest codebook vector (squared L2)."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    # |z - e|^2 = |z|^2 - 2 z.e + |e|^2; |z|^2 is the same for every code, so it is left out.
    dist = codebook.pow(2).sum(dim=1)[None, :] - 2 * flat @ codebook.T
    return dist.argmin(dim=1).reshape(z.shape[0], z.shape[2], z.shape[3])


class VQGAN(nn.Module):
    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.label = "untitled VQGAN"  # where the weights came from, recorded with every image
        dd = config.ddconfig
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        if config.gumbel:
            self.quantize: nn.Module = GumbelQuantizer(dd["z_channels"], config.n_embed, config.embed_dim)
        else:
            self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(dd["z_channels"], config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, dd["z_channels"], 1)

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantize.codebook

    @property
    def downscale(self) -> int:
        return self.config.downscale

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> quantised latents (B, embed_dim, H/f, W/f)."""
        # (GumbelVQ's proj takes z_channels inputs after quant_conv: the published Gumbel configs
        # have z_channels == embed_dim, as taming itself requires.)
        h = self.quant_conv(self.encoder(pixels))
        return self.codes_to_latent(self.quantize.indices(h))

    def codes_to_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) code indices -> (B, embed_dim, h, w) latents."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def quantize_straight_through(self, z: torch.Tensor) -> torch.Tensor:
        """Snap to the nearest code on the way forward, pass the gradient to `z` unchanged on the way back.

        The snap has no useful gradient (argmin), so VQGAN+CLIP optimises the continuous latent and lets
        the decoder only ever see real codes.
        """
        z_q = self.codes_to_latent(nearest_code(z, self.codebook))
        return z + (z_q - z).detach()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Quantised latents -> images in about [-1, 1]."""
        return self.decoder(self.post_quant_conv(latent))


_cache_lock = threading.Lock()


def load_vqgan(config: Path | str, checkpoint: Path | str | None, device: str = "cpu") -> VQGAN:
    """Build the model a taming yaml describes and load its checkpoint; frozen, in eval mode.

    `checkpoint=None` gives seeded random weights (benchmarks: same compute as the real thing).
    """
    cfg = VQGANConfig.from_yaml(Path(config))
    if checkpoint is None:
        with _cache_lock:  # the global RNG is shared: keep another thread from reseeding mid-build
            state = torch.random.get_rng_state()
            torch.manual_seed(0)
            model = VQGAN(cfg)
            torch.random.set_rng_state(state)
    else:
        model = VQGAN(cfg)
        load_taming_state_dict(
            model, read_state_dict(Path(checkpoint)), source=str(checkpoint), config=str(config)
        )
    model.label = vqgan_label(Path(config), Path(checkpoint) if checkpoint else None)
    model.requires_grad_(False)
    return model.eval().to(device)


def load_taming_state_dict(
    model: VQGAN, state_dict: dict[str, torch.Tensor], source: str = "", config: str = "its config"
) -> None:
    kept = {k: v for k, v in state_dict.items() if not k.startswith(IGNORED_PREFIXES)}
    own = model.state_dict()
    # Shapes first: load_state_dict would stop at the first size mismatch with a raw traceback.
    wrong = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in kept.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        raise VQGANConfigError(_mismatch_message(model, kept, wrong, source, config))
    result = model.load_state_dict(kept, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise VQGANConfigError(
            f"checkpoint {source} does not match the config {config}: missing {result.missing_keys[:5]} "
            f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:5]} "
            f"({len(result.unexpected_keys)}); pass the .yaml that was published with this .ckpt"
        )


def _mismatch_message(model: VQGAN, kept: dict, wrong: list, source: str, config: str) -> str:
    cfg = model.config
    codebook = "quantize.embed.weight" if cfg.gumbel else "quantize.embedding.weight"
    if codebook in kept and kept[codebook].dim() == 2:
        codes, dim = kept[codebook].shape
        if (codes, dim) != (cfg.n_embed, cfg.embed_dim):
            return (
                f"the VQGAN config {config} and checkpoint {source} do not match: the config describes "
                f"{cfg.n_embed} codes of {cfg.embed_dim} dimensions (n_embed, embed_dim), the checkpoint "
                f"holds {codes} codes of {dim}. Pass the .yaml published with this .ckpt (for a "
                f"{codes}-code checkpoint, e.g. vqgan_imagenet_f16_{codes}.yaml)"
            )
    key, theirs, ours = wrong[0]
    theirs_text, ours_text = "x".join(map(str, theirs)), "x".join(map(str, ours))
    return (
        f"the VQGAN config {config} and checkpoint {source} do not match: {key} is {theirs_text} "
        f"in the checkpoint but {ours_text} by the config ({len(wrong)} tensors differ). "
        "Pass the .yaml that was published with this .ckpt"
    )


def load_default_vqgan(device: str = "cpu") -> VQGAN:
    """The tiny VQGAN shipped in generation/tiny_vqgan (trained on the toy world; see train.py)."""
    if not TINY_CHECKPOINT.is_file():
        raise VQGANConfigError(
            f"{TINY_CHECKPOINT} is missing; run `python -m generation.tiny_vqgan.train` to recreate it, "
            "or pass --vqgan CONFIG.yaml,MODEL.ckpt"
        )
    model = load_vqgan(TINY_CONFIG, TINY_CHECKPOINT, device)
    model.label = TINY_LABEL
    return model


def load_vqgan_spec(spec: str | None, device: str = "cpu") -> VQGAN:
    """`CONFIG.yaml,MODEL.ckpt` (the `vqgan` setting, --vqgan), or ""/None for the tiny VQGAN."""
    if not spec:
        return load_default_vqgan(device)
    return load_vqgan(*parse_vqgan_spec(spec), device=device)
