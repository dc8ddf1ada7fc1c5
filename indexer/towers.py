"""CLIP on ONNX Runtime behind the Encoder's interface, each tower loaded only when it is needed.

On a CPU this is how photoseek runs CLIP by default (the `runtime` setting): no torch import (~0.6 GB
and seconds), sessions made for CPUs, and towers that load separately, so a text query never pays
for the image tower and an indexer never keeps the text tower. The towers live in the Library's model
cache (indexer/models.py): idle ones are let go, and releasing the text tower really frees it.
torch and open_clip stay the reference and the GPU path (indexer/encoder.py); the export is checked
against them (indexer/onnx_export.py) and the equivalence is tested (tests/test_onnx*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.catalog.store import ModelIdentity
from indexer.models import ModelCache
from indexer.onnx_towers import OnnxImageTower, OnnxManifest, OnnxTextTower
from indexer.preprocess import fit_square


class OnnxClip:
    """What the writer, the searcher and the tags need of a CLIP model; cheap to make (a manifest)."""

    device = "cpu"

    def __init__(
        self, folder: Path, models: ModelCache, threads: int = 0, precision: str = "fp32", idle_unload_s=0.0
    ) -> None:
        self.folder = folder
        self.manifest = OnnxManifest.load(folder)
        self.identity: ModelIdentity = self.manifest.identity()
        self.image_size = self.manifest.image_size
        self.logit_scale = float(self.manifest.logit_scale)
        self._models = models
        self._threads = threads
        self._precision = precision  # the Library exports what is missing before it makes this
        self._idle = idle_unload_s
        self.image_key = f"onnx-image:{folder}:{self._precision}"
        self.text_key = f"onnx-text:{folder}:{self._precision}"

    @property
    def spec(self) -> str:
        return self.manifest.spec

    def _image(self) -> OnnxImageTower:
        return self._models.get(
            self.image_key, lambda: OnnxImageTower(self.folder, self._threads, self._precision), self._idle
        )

    def _text(self) -> OnnxTextTower:
        return self._models.get(
            self.text_key, lambda: OnnxTextTower(self.folder, self._threads, self._precision), self._idle
        )

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self._image().encode_pixels(np.asarray(pixels))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(np.stack([fit_square(im, self.image_size) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._text().encode_texts(texts)

    def release_text_tower(self) -> None:
        """Free the text tower now (it loads again, in a fraction of a second, if text is asked for)."""
        self._models.unload(self.text_key)

    def loaded(self) -> bool:
        return self._models.loaded(self.image_key) or self._models.loaded(self.text_key)
