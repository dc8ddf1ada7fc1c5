"""An Encoder (indexer/encoder.py's interface) whose towers run on ONNX Runtime: a drop-in for the
writer, the searcher and the tags, on the CPU, without torch.

    enc = OnnxEncoder(folder, threads=2, precision="fp32")   # reads onnx_model.json only
    enc.identity, enc.image_size, enc.device ("cpu"), enc.spec, enc.logit_scale
    enc.encode_pixels(uint8 N x S x S x 3) / enc.encode_images([PIL images]) / enc.encode_texts([str])
    enc.release_text_tower() / enc.release_image_tower()

Each tower loads on its first use, so a text query loads only the text tower (~0.3 s, no torch) and
an indexer that has its tag vocabulary's vectors loads only the image tower. Loading is under a lock:
searchd's request threads may ask at once. Generation needs gradients and stays on torch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.onnx_towers import OnnxImageTower, OnnxManifest, OnnxTextTower
from indexer.preprocess import fit_square


class OnnxEncoder:
    device = "cpu"
    runtime = "onnx"

    def __init__(self, folder: Path, threads: int = 0, precision: str = "fp32"):
        self.manifest = OnnxManifest.load(folder)
        self.manifest.path("image", precision)  # fails now, with what to do, if that precision is missing
        self.folder = Path(folder)
        self.threads = threads
        self.precision = precision
        self.spec = self.manifest.spec
        self.identity = self.manifest.identity()
        self.image_size = self.manifest.image_size
        self.logit_scale = self.manifest.logit_scale
        self._lock = threading.Lock()
        self._image: OnnxImageTower | None = None
        self._text: OnnxTextTower | None = None

    def _image_tower(self) -> OnnxImageTower:
        with self._lock:
            if self._image is None:
                self._image = OnnxImageTower(self.folder, self.threads, self.precision)
            return self._image

    def _text_tower(self) -> OnnxTextTower:
        with self._lock:
            if self._text is None:
                self._text = OnnxTextTower(self.folder, self.threads, self.precision)
            return self._text

    @property
    def loaded(self) -> tuple[str, ...]:
        """Which towers are in memory now ("image", "text")."""
        return tuple(n for n, t in (("image", self._image), ("text", self._text)) if t is not None)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a batch of fit_square() outputs (N x S x S x 3 uint8) as unit rows."""
        if len(pixels) == 0:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        return self._image_tower().encode_pixels(np.asarray(pixels))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(np.stack([fit_square(im, self.image_size) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._text_tower().encode_texts(list(texts))

    def release_text_tower(self) -> None:
        """Free the text tower's session; the next encode_texts loads it again."""
        with self._lock:
            self._text = None

    def release_image_tower(self) -> None:
        with self._lock:
            self._image = None
