"""CLIP towers on ONNX Runtime: onnxruntime + numpy + tokenizers, no torch (CPU start-up and memory).

API, for the model cache (the folder is what indexer/onnx_export.py `export()` wrote):

    manifest = OnnxManifest.load(folder)        # cheap: reads onnx_model.json only
    manifest.identity() -> ModelIdentity         # as load_encoder's Encoder.identity for the same spec
    manifest.has("int8")                         # was the export made with int8=True
    img = OnnxImageTower(folder, threads=2, precision="fp32")   # loads image.onnx (~0.3 s, ViT-B-32)
    img.image_size, img.dim
    img.encode_pixels(uint8 N x S x S x 3) -> float32 N x D unit rows   # fit_square() outputs
    txt = OnnxTextTower(folder, threads=2, precision="fp32")    # loads text.onnx + tokenizer.json
    txt.encode_texts(["a dog"]) -> float32 N x D unit rows
    txt.logit_scale -> float

Both match indexer/encoder.py's Encoder on the same pixels and texts (fp32: cosine > 0.9999; int8:
see tests/test_onnx_towers.py and bench/RESULTS.md). A tower is a plain object: load it lazily and drop
the reference to free it (a session holds its weights, ~350 MB for ViT-B-32-256's image tower).
threads: intra-op threads of the session (0: onnxruntime's default, one per core).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "onnx_model.json"
FORMAT = 1  # the manifest format this reader understands (onnx_export.FORMAT)
PRECISIONS = ("fp32", "int8")


class OnnxModelError(RuntimeError):
    """The exported model is missing or does not fit; the message says what to do."""


@dataclass(frozen=True)
class OnnxManifest:
    folder: Path
    spec: str
    identity_fields: dict
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logit_scale: float
    context_length: int
    text_trim: bool
    files: dict
    tokenizer: str

    @classmethod
    def load(cls, folder: Path) -> OnnxManifest:
        folder = Path(folder)
        path = folder / MANIFEST
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OnnxModelError(
                f"no ONNX export at {folder} ({exc}); export it with indexer.onnx_export.export()"
            ) from exc
        if doc.get("format") != FORMAT:
            raise OnnxModelError(
                f"{path} has format {doc.get('format')}, not {FORMAT}; export the model again"
            )
        return cls(
            folder=folder,
            spec=doc["spec"],
            identity_fields=doc["identity"],
            image_size=int(doc["image_size"]),
            mean=tuple(doc["mean"]),
            std=tuple(doc["std"]),
            logit_scale=float(doc["logit_scale"]),
            context_length=int(doc["context_length"]),
            text_trim=bool(doc["text_trim"]),
            files=doc["files"],
            tokenizer=doc["tokenizer"],
        )

    def has(self, precision: str) -> bool:
        return precision in self.files

    def path(self, tower: str, precision: str) -> Path:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.has(precision):
            raise OnnxModelError(
                f"the export at {self.folder} has no {precision} towers; export it again with int8=True"
            )
        return self.folder / self.files[precision][tower]

    def identity(self):
        from indexer.catalog.store import ModelIdentity

        f = self.identity_fields
        return ModelIdentity(f["name"], f["pretrained"], f["file_hash"], int(f["dim"]))


def open_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session. Threads do not spin waiting for work: on a 2-core machine shared
    with decoding processes, spinning threads steal the cores they wait for (bench/RESULTS.md).

    The graph onnxruntime optimises at load is kept beside the export (*.opt.onnx; the export lives
    in a per-machine cache, and the optimised graph suits this machine), so later loads skip that
    work: ViT-B-32-256's int8 text tower loads in ~35 ms instead of 80-140 (a cold CLI query's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
    optimized = path.with_suffix(".opt.onnx")
    fresh = optimized.exists() and optimized.stat().st_mtime >= path.stat().st_mtime
    if fresh:
        source, opts.graph_optimization_level = optimized, ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        source, opts.graph_optimization_level = path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        tmp = optimized.with_name(f".{optimized.name}.tmp{os.getpid()}")
        opts.optimized_model_filepath = str(tmp)
    try:
        session = ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for missing or bad files
        raise OnnxModelError(f"cannot load {source}: {exc}; export the model again") from exc
    if not fresh:
        with contextlib.suppress(OSError):  # a read-only cache: load unoptimised next time too
            os.replace(tmp, optimized)
    return session


def _unit(feats: np.ndarray) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float32)
    return feats / np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)


class OnnxImageTower:
    def __init__(self, folder: Path, threads: int = 0, precision: str = "fp32"):
        self.manifest = OnnxManifest.load(folder)
        self.precision = precision
        self.image_size = self.manifest.image_size
        self.dim = int(self.manifest.identity_fields["dim"])
        self._session = open_session(self.manifest.path("image", precision), threads)
        # As Encoder.normalize_pixels: (x - 255 mean) / (255 std), on uint8 values.
        self._mean = np.asarray(self.manifest.mean, dtype=np.float32) * 255
        self._inv_std = 1.0 / (np.asarray(self.manifest.std, dtype=np.float32) * 255)

    def normalize_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x S x S x 3 -> float32 N x 3 x S x S model input."""
        x = (pixels.astype(np.float32) - self._mean) * self._inv_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a batch of fit_square() outputs (N x S x S x 3 uint8) as unit rows."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        s = self.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (s, s, 3):
            raise ValueError(f"pixels of shape {pixels.shape}; this tower takes N x {s} x {s} x 3 uint8")
        (feats,) = self._session.run(None, {"input": self.normalize_pixels(np.asarray(pixels))})
        return _unit(feats)


class OnnxTextTower:
    def __init__(self, folder: Path, threads: int = 0, precision: str = "fp32"):
        from indexer.clip_tokenizer import ClipTokenizer

        self.manifest = OnnxManifest.load(folder)
        self.precision = precision
        self.logit_scale = self.manifest.logit_scale
        self.dim = int(self.manifest.identity_fields["dim"])
        self._session = open_session(self.manifest.path("text", precision), threads)
        self.tokenizer = ClipTokenizer(
            self.manifest.folder / self.manifest.tokenizer, self.manifest.context_length
        )

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts))
        if self.manifest.text_trim:
            # Causal and pooled at <end> (the highest id): positions after it cannot change the result.
            tokens = tokens[:, : int(tokens.argmax(axis=1).max()) + 1]
        (feats,) = self._session.run(None, {"input": tokens})
        return _unit(feats)
