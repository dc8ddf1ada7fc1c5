"""JPEGs decoded on the GPU (nvJPEG through torchvision) and fitted to the model's input there.

On a CUDA machine the CPU cannot decode photos as fast as the GPU embeds them (bench/RESULTS.md:
16 processes draft-decode ~230 12 MP JPEGs/s; ViT-B-32 fp16 embeds ~24,000/s). The decoding workers
then only read, hash and parse headers, and ship the JPEG's bytes; the writer decodes whole batches
here, and the pixels never come back to host memory. Anything nvJPEG refuses is decoded by Pillow,
which gives the same result and the same error messages as the CPU path.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Decoded pixels in flight per nvJPEG call: 256 MP is 768 MB of RGB, e.g. 21 photos of 12 MP. A batch
# of 256 such photos at once would need 9 GB, more than many GPUs have.
MAX_PIXELS_PER_DECODE = 256e6
# Floats in flight per resize call: a 12 MP photo is 144 MB as float32, so big photos go a few at a time.
MAX_PIXELS_PER_RESIZE = 64e6


def gpu_jpeg_available(device: str) -> bool:
    """nvJPEG decoding is possible here: a CUDA device and a torchvision built with nvJPEG."""
    if device != "cuda" or not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


class GpuJpegDecoder:
    """Batches of JPEG bytes in, N x S x S x 3 uint8 model inputs on the GPU out."""

    def __init__(self, size: int, device: str = "cuda", max_pixels: float = MAX_PIXELS_PER_DECODE) -> None:
        self.size = size
        self.device = device
        self.max_pixels = max_pixels  # the writer decodes a batch in runs of at most this many pixels

    def decode(self, jpegs: Sequence[bytes]) -> list[torch.Tensor | None]:
        """C x H x W uint8 RGB on the GPU, EXIF orientation applied; None where nvJPEG failed."""
        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # frombuffer on read-only bytes: we never write to them
            data = [torch.frombuffer(b, dtype=torch.uint8) for b in jpegs]
        kw = {"mode": ImageReadMode.RGB, "device": self.device, "apply_exif_orientation": True}
        try:
            return list(decode_jpeg(data, **kw))
        except RuntimeError:  # one bad file fails the whole batch: find it
            out: list[torch.Tensor | None] = []
            for d in data:
                try:
                    out.append(decode_jpeg(d, **kw))
                except RuntimeError:
                    out.append(None)
            return out

    def fit(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """fit_square on the GPU: shortest side to S (bicubic, antialiased, as Pillow resizes), centre
        crop. Photos of one size are resized together: a camera's photos mostly share one."""
        s = self.size
        out = torch.empty((len(images), s, s, 3), dtype=torch.uint8, device=self.device)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            groups[(int(img.shape[1]), int(img.shape[2]))].append(i)
        for (h, w), idx in groups.items():
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            top, left = (nh - s) // 2, (nw - s) // 2
            step = max(1, int(MAX_PIXELS_PER_RESIZE // (h * w)))
            for start in range(0, len(idx), step):
                part = idx[start : start + step]
                x = torch.stack([images[i] for i in part]).float()
                if (nh, nw) != (h, w):
                    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
                x = x[:, :, top : top + s, left : left + s].round_().clamp_(0, 255)
                out[part] = x.to(torch.uint8).permute(0, 2, 3, 1)
        return out
