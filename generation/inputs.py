"""The pictures a job starts from or aims at: library images by id, and uploads kept for queued jobs.

The server never reads a path a client names. An init image or an image prompt is either an image of
the library (its id; the file must still lie inside one of the library's roots, as for
/api/images/ID/file) or an upload, decoded and bounded here and kept under DATA_DIR/generation-inputs
(outside generated/, so it is never indexed) until its job ends, so a queued job survives a restart.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from pathlib import Path

from PIL import Image

from indexer.catalog import Catalog
from indexer.catalog.schema import OK
from indexer.catalog.schema import Image as ImageRow
from indexer.decode import DecodeError, decode_bytes
from indexer.errors import BadInput

MAX_INPUT_SIDE = 1024  # an init image is resized to the output (at most 1024 per side) anyway
MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_INPUT_MEGAPIXELS = 64.0  # a picture to start from or aim at needs no more (issue 12: bounded cost)
MAX_IMAGE_ID = 2**62 - 1  # SQLite and FAISS ids are signed 64-bit; the catalog stays below this
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.png$")


class InputError(BadInput):
    """The picture cannot be used; the message says why (HTTP 400, or 404 for an id the library lacks)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.http_status = self.status = status


def library_image_path(catalog: Catalog, image_id: int) -> Path:
    """The real path of an indexed image, if it lies inside one of the library's roots."""
    if not 0 < image_id <= MAX_IMAGE_ID:
        raise InputError(f"#{image_id} is not an image id (ids are 1..{MAX_IMAGE_ID})")
    with catalog.session() as s:
        row = s.get(ImageRow, image_id)
        status, path = (row.status, row.path) if row is not None else (None, None)
    if status != OK or path is None:
        raise InputError(f"no image #{image_id} in the library (unknown, deleted or not indexed)", 404)
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        raise InputError(
            f"the file of image #{image_id} ({os.path.basename(path)}) is gone from disk", 404
        ) from None
    roots = [Path(r.path).resolve() for r in catalog.roots()]
    if not real.is_file() or not any(real.is_relative_to(root) for root in roots):
        raise InputError(f"the file of image #{image_id} lies outside the library's folders; it is not used")
    return real


def open_library_image(
    catalog: Catalog, image_id: int, max_megapixels: float = MAX_INPUT_MEGAPIXELS
) -> Image.Image:
    """An indexed image as RGB, oriented by its EXIF (decoded as the indexer decodes it)."""
    path = library_image_path(catalog, image_id)
    return _decode(path.read_bytes(), path.name, max_megapixels)


def store_upload(
    data: bytes, name: str, inputs_dir: Path, max_megapixels: float = MAX_INPUT_MEGAPIXELS
) -> str:
    """Decode an uploaded picture, shrink it to MAX_INPUT_SIDE, keep it as PNG; returns its file name."""
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"the uploaded image is over {MAX_INPUT_BYTES // 2**20} MB")
    image = _decode(data, name, max_megapixels)
    image.thumbnail((MAX_INPUT_SIDE, MAX_INPUT_SIDE), Image.Resampling.LANCZOS)
    inputs_dir.mkdir(parents=True, exist_ok=True)
    stored = f"{secrets.token_hex(16)}.png"
    partial = inputs_dir / f".{stored}.partial"
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    partial.write_bytes(buf.getvalue())
    os.replace(partial, inputs_dir / stored)
    return stored


def upload_path(inputs_dir: Path, stored: str) -> Path:
    """The path of a stored upload; only names store_upload makes are accepted (never a path)."""
    if not isinstance(stored, str) or not _UPLOAD_NAME.match(stored):
        raise InputError("init_upload is not the name of an uploaded image")
    path = inputs_dir / stored
    if not path.is_file():
        raise InputError(f"the uploaded init image {stored} is gone (its job ended?)", 404)
    return path


def remove_upload(inputs_dir: Path, stored: str | None) -> None:
    if isinstance(stored, str) and _UPLOAD_NAME.match(stored):
        (inputs_dir / stored).unlink(missing_ok=True)


def _decode(data: bytes, name: str, max_megapixels: float) -> Image.Image:
    try:
        # draft: a JPEG decodes at 1/2..1/8 when that still leaves MAX_INPUT_SIDE pixels.
        return decode_bytes(data, name, max_megapixels=max_megapixels, draft=MAX_INPUT_SIDE).image
    except DecodeError as exc:
        raise InputError(f"{name}: {exc}") from exc
