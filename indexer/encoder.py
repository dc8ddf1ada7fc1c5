"""Name in, ready encoder out: `load_encoder(spec, device)`.

A spec names an open_clip architecture and its weights:
  NAME:PRETRAINED   a tag from open_clip's registry (downloaded once, then read from the cache)
  NAME:/path/w.pt   a local weights file (its hash becomes part of the model's identity)
  NAME:random       seeded random weights: same compute as the real thing, for benchmarks
  toy               the toy CLIP shipped in indexer/toyclip (trained on the synthetic world)
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from indexer import toyclip
from indexer.catalog.store import ModelIdentity
from indexer.errors import BadInput, ModelUnavailable
from indexer.preprocess import fit_square

log = logging.getLogger(__name__)

TOY_ARCH = toyclip.MODEL_NAME
TOY_CHECKPOINT = toyclip.CHECKPOINT_PATH
TOY_ALIASES = {"toy", "toy-clip", f"{TOY_ARCH}:toyworld"}
RANDOM_TAG = "random"
# A CPU text tower this large runs ~2x faster in bf16 where the CPU has bf16 instructions
# (bench/RESULTS.md: ViT-B-32-256's, one query, 2 threads: 19.5 -> 10.3 ms, cosine to fp32 > 0.9999).
BF16_TEXT_MIN_PARAMS = 20_000_000
NETWORK_PROBE_SECONDS = 3.0
HUB_HOST = "huggingface.co"

_registry_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    name: str  # open_clip architecture
    weights: str  # registry tag, RANDOM_TAG, or a local file path

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        if text in TOY_ALIASES:
            return cls(TOY_ARCH, str(TOY_CHECKPOINT))
        name, sep, weights = text.partition(":")
        if not sep or not name or not weights:
            raise BadInput(
                f"model spec {text!r} is not NAME:PRETRAINED, NAME:/path/to/weights or 'toy'; "
                "list the registry with `photoseek models`"
            )
        return cls(name, weights)

    @property
    def is_file(self) -> bool:
        return self.weights != RANDOM_TAG and ("/" in self.weights or Path(self.weights).suffix != "")

    def __str__(self) -> str:
        return f"{self.name}:{self.weights}"


def set_torch_threads(threads: int) -> None:
    """The torch_threads setting: 0 leaves torch's default (one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def register_toy_config() -> None:
    """Make the toy architecture known to open_clip (its registry is a module-level dict)."""
    with _registry_lock:
        toyclip.register()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _host_reachable(host: str, timeout: float) -> bool:
    # getaddrinfo ignores socket timeouts, so bound the whole probe with a thread.
    def probe() -> bool:
        with socket.create_connection((host, 443), timeout=timeout):
            return True

    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(probe).result(timeout=timeout + 0.5)
        except (OSError, FutureTimeout):
            return False


def _registry_weights_cached(name: str, tag: str) -> bool:
    cfg = open_clip.pretrained.get_pretrained_cfg(name, tag)
    if not cfg:
        known = ", ".join(t for t in open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ModelUnavailable(
            f"open_clip has no pretrained weights {tag!r} for {name!r} (known tags: {known})"
        )
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, filename = hub.partition("/")
        names = [filename] if filename else []
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo_id, n), str) for n in names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).exists()


def _check_weights_obtainable(spec: ModelSpec) -> None:
    """Fail in seconds, not after minutes of retries, when the weights are neither here nor fetchable."""
    if spec.weights == RANDOM_TAG:
        return
    if spec.is_file:
        if not Path(spec.weights).is_file():
            raise ModelUnavailable(f"weights file {spec.weights} for model {spec.name} does not exist")
        return
    if _registry_weights_cached(spec.name, spec.weights):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if offline or not _host_reachable(HUB_HOST, NETWORK_PROBE_SECONDS):
        raise ModelUnavailable(
            f"the weights of {spec} are not in the local cache and {HUB_HOST} cannot be reached. "
            f"On a machine with internet run `photoseek fetch-model {spec}` (it fills "
            "~/.cache/huggingface), copy that cache folder here, or download the weights file and "
            f"pass --model {spec.name}:/path/to/weights.safetensors"
        )


def _identity(spec: ModelSpec, dim: int) -> ModelIdentity:
    if spec.name == TOY_ARCH and Path(spec.weights) == TOY_CHECKPOINT:
        return ModelIdentity(TOY_ARCH, "toyworld", file_sha256(TOY_CHECKPOINT), dim)
    if spec.weights == RANDOM_TAG:
        return ModelIdentity(spec.name, RANDOM_TAG, "seed0", dim)
    if spec.is_file:
        return ModelIdentity(spec.name, "file", file_sha256(Path(spec.weights)), dim)
    return ModelIdentity(spec.name, spec.weights, "", dim)


class Encoder:
    """An open_clip model on a device, giving unit-norm float32 embeddings."""

    def __init__(
        self,
        spec: ModelSpec,
        model: torch.nn.Module,
        tokenizer,
        device: str,
        dtype: torch.dtype,
        text_bf16: bool = False,
    ):
        self.spec = spec
        self._text_bf16 = text_bf16
        self._text_released = False
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        visual = model.visual
        size = visual.image_size
        self.image_size: int = size[0] if isinstance(size, tuple | list) else int(size)
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self._mean = torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
        with torch.no_grad():
            probe = self.encode_texts(["a photo"])
        self.identity = _identity(spec, int(probe.shape[1]))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    def normalize_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC pixels (any device) -> normalised NCHW model input on the encoder's device."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(self.dtype)
        x = (x - self._mean) / self._std
        if self.device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def encode_pixels(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed a batch of fit_square() outputs (N x S x S x 3 uint8)."""
        if len(pixels) == 0:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        t = torch.from_numpy(np.ascontiguousarray(pixels)) if isinstance(pixels, np.ndarray) else pixels
        if self.device == "cuda" and t.device.type == "cpu":
            t = t.pin_memory()
        feats = self.model.encode_image(self.normalize_pixels(t))
        return _unit(feats)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(np.stack([fit_square(im, self.image_size) for im in images]))

    def release_text_tower(self) -> None:
        """Free the text tower (~120-240 MB for ViT-B-32-256) in a process that only embeds images;
        the next encode_texts loads it again from the same weights. Other model types keep theirs."""
        if self._text_released or not _fast_text_path(self.model):
            return
        for name in TEXT_PARTS:
            setattr(self.model, name, None)
        self._text_released = True

    def _restore_text_tower(self) -> None:
        log.info("loading the text tower of %s again", self.spec)
        fresh = _create_model(self.spec, self.device, self.dtype)
        if self._text_bf16:
            _text_tower_to(fresh, torch.bfloat16)
        for name in TEXT_PARTS:
            setattr(self.model, name, getattr(fresh, name))
        self._text_released = False

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self._text_released:
            self._restore_text_tower()
        tokens = self.tokenizer(list(texts)).to(self.device)
        return _unit(_encode_used_tokens(self.model, tokens))


def _encode_used_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's CLIP.encode_text over the positions in use only.

    The text tower is causal and pools at the end-of-text token (the highest id), so the padding
    after it cannot change the result; a short query runs ~10 positions instead of 77, which is what
    brings a CPU text query from hundreds of ms to tens (bench/RESULTS.md). Other towers run as is.
    """
    m = model
    if not _fast_text_path(m):
        return m.encode_text(tokens)
    n = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :n]
    cast = m.transformer.get_cast_dtype()
    x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:n].to(cast)
    x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    if m.text_projection is None:
        return x
    return m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix products in hardware. Elsewhere (a NAS's Celeron, say) bf16 is
    emulated and slower than fp32."""
    try:
        flags = {
            f
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
            for f in line.split()
        }
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _text_params(model: torch.nn.Module) -> int:
    parts = [model.transformer, model.token_embedding]
    return sum(p.numel() for part in parts for p in part.parameters())


def _text_tower_to(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast the text tower (only: image embeddings stay as they are) of an open_clip CLIP to dtype."""
    for part in (model.transformer, model.token_embedding, model.ln_final):
        part.to(dtype)
    model.positional_embedding.data = model.positional_embedding.data.to(dtype)
    if isinstance(model.text_projection, torch.nn.Linear):
        model.text_projection.to(dtype)
    elif model.text_projection is not None:
        model.text_projection.data = model.text_projection.data.to(dtype)
    if model.attn_mask is not None:
        model.attn_mask = model.attn_mask.to(dtype)


# An open_clip CLIP's text tower: what release_text_tower frees and a reload puts back.
TEXT_PARTS = (
    "transformer",
    "token_embedding",
    "ln_final",
    "positional_embedding",
    "text_projection",
    "attn_mask",
)


def _fast_text_path(m: torch.nn.Module) -> bool:
    return type(m) is open_clip.CLIP and m.text_pool_type == "argmax" and m.attn_mask is not None


def _unit(feats: torch.Tensor) -> np.ndarray:
    feats = feats.float()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def load_encoder(spec: str | ModelSpec, device: str = "auto", text_bf16: bool | None = None) -> Encoder:
    """Load a model for inference: fp16 on CUDA, fp32 elsewhere.

    text_bf16: run the text tower in bf16 on the CPU. None: where the CPU has bf16 instructions and
    the tower is big enough to gain (real CLIPs, not the toy)."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    register_toy_config()
    if spec.name not in open_clip.list_models():
        raise ModelUnavailable(f"open_clip has no architecture {spec.name!r}; see `photoseek models`")
    _check_weights_obtainable(spec)
    device = pick_device(device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = _create_model(spec, device, dtype)
    if device == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if device != "cpu" or not _fast_text_path(model):
        text_bf16 = False
    elif text_bf16 is None:
        text_bf16 = _text_params(model) >= BF16_TEXT_MIN_PARAMS and cpu_has_native_bf16()
    if text_bf16:
        _text_tower_to(model, torch.bfloat16)
    log.info("loaded %s on %s (%s)", spec, device, dtype)
    return Encoder(spec, model, open_clip.get_tokenizer(spec.name), device, dtype, text_bf16)


def _create_model(spec: ModelSpec, device: str, dtype: torch.dtype) -> torch.nn.Module:
    if spec.weights == RANDOM_TAG:
        torch.manual_seed(0)  # same random weights every time: a stable identity for benchmarks
    pretrained = None if spec.weights == RANDOM_TAG else spec.weights
    try:
        model = open_clip.create_model(spec.name, pretrained=pretrained, device=device, precision="fp32")
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise ModelUnavailable(f"could not load {spec}: {exc}") from exc
    return model.to(dtype=dtype).eval()
