"""Turn an RGB image into the square uint8 pixels a CLIP tower takes.

Kept free of torch so decoding worker processes can run it and ship small uint8 arrays (a 224 px
input is 150 KB, a 12 MP photo 36 MB). Normalisation happens on the model's device, see encoder.py.
It matches open_clip's default transform: shortest side to `size` (bicubic), then a centre crop.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def fit_square(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shortest side to `size` and centre-crop to size x size; returns HxWx3 uint8."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        # reducing_gap lets Pillow shrink in a cheap box step first: big photos get much faster.
        image = image.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)
