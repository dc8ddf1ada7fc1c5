"""Thumbnails: made once on first request, oriented, cached on disk by content hash.

The content hash names the cache file, so a moved or renamed photo keeps its thumbnail and an edited
one gets a new file; the hash is also the HTTP ETag, so browsers revalidate with a 304.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from pathlib import Path

from PIL import Image

from indexer.decode import decode_bytes, hash_bytes

log = logging.getLogger(__name__)

_HASH = re.compile(r"^[0-9a-f]{16,128}$")  # it becomes a file name: nothing else may pass
JPEG_QUALITY = 82


class ThumbCache:
    def __init__(self, thumbs_dir: Path, size: int, max_megapixels: float) -> None:
        self.dir = thumbs_dir
        self.size = size
        self.max_megapixels = max_megapixels
        self._making: dict[str, threading.Lock] = {}  # one maker per hash; others wait for its file
        self._guard = threading.Lock()

    def path_for(self, content_hash: str) -> Path:
        if not _HASH.match(content_hash):
            raise ValueError(f"not a content hash: {content_hash[:40]!r}")
        return self.dir / content_hash[:2] / f"{content_hash}-{self.size}.jpg"

    def cached(self, content_hash: str) -> Path | None:
        path = self.path_for(content_hash)
        return path if path.is_file() else None

    def make(self, source: Path, content_hash: str) -> tuple[Path, str]:
        """(thumbnail file, its ETag) for `source`, creating it if needed. Raises OSError, DecodeError.

        The file is read once; if its bytes no longer match the catalog's hash (edited since it was
        indexed) the thumbnail is keyed by what was actually read, so the cache never lies.
        """
        with self._guard:
            lock = self._making.setdefault(content_hash, threading.Lock())
        with lock:
            try:
                hit = self.cached(content_hash)
                if hit is not None:
                    return hit, content_hash
                data = source.read_bytes()
                actual = hash_bytes(data)
                target = self.path_for(actual)
                if not target.is_file():
                    decoded = decode_bytes(data, source.name, self.max_megapixels, draft=self.size)
                    _write_jpeg(decoded.image, self.size, target)
                    log.debug("made thumbnail %s for %s", target.name, source)
                return target, actual
            finally:
                with self._guard:
                    self._making.pop(content_hash, None)


def _write_jpeg(image: Image.Image, size: int, target: Path) -> None:
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)  # keeps the aspect ratio
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a reader never sees half a thumbnail, and two makers cannot interleave.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, target)
