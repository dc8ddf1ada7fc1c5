"""A photo's bytes in, an oriented RGB image and its metadata out; or a DecodeError with the reason.

Nothing else: no hashing, no catalog, no torch. Worker processes call `read_photo` (read + hash +
decode + fit to the model's input) so that the writer only embeds and commits.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from indexer.errors import DecodeError
from indexer.formats import EXPECTED_FORMAT, HEIF_EXTS, NO_HEIF, RAW_EXTS, heif_available, raw_preview
from indexer.preprocess import fit_square

# photoseek applies its own pixel limit (max_megapixels) as soon as the header is read, so Pillow's
# global guard would only double-report; it is turned off in the processes that decode.
Image.MAX_IMAGE_PIXELS = None

EXIF_IFD = 0x8769
TAG_DATETIME, TAG_DATETIME_ORIGINAL, TAG_MAKE, TAG_MODEL = 306, 36867, 271, 272
PROMPT_KEY = "photoseek:prompt"


@dataclass
class Decoded:
    image: Image.Image  # RGB, EXIF orientation applied; maybe reduced by JPEG draft decoding
    width: int  # full size as displayed (after rotation)
    height: int
    format: str
    taken_at: datetime | None = None
    camera: str | None = None
    caption: str | None = None  # a generated image's prompt
    generated: bool = False
    note: str | None = None  # indexed, but worth telling (e.g. a PNG named .jpg)


def decode_bytes(
    data: bytes, name: str, max_megapixels: float = 200.0, draft: int | None = None, gpu_jpeg: bool = False
) -> Decoded:
    """Decode `data` (the file named `name`). `draft`: smallest side needed; lets JPEG decode at 1/2..1/8.

    `gpu_jpeg`: a JPEG that nvJPEG can take is not decoded here: its metadata comes back with
    image=None and the writer decodes it on the GPU (indexer/gpu_decode.py).
    """
    ext = Path(name).suffix.lower()
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if ext in HEIF_EXTS and not heif_available():
        raise DecodeError(NO_HEIF)
    if ext in RAW_EXTS:
        try:
            data = raw_preview(data)
        except (LookupError, ValueError) as exc:
            raise DecodeError(str(exc)) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about odd EXIF is not the user's problem
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_megapixels * 1e6:
                raise DecodeError(
                    f"decompression bomb guard: {w}x{h} is {w * h / 1e6:.0f} MP, over the limit of "
                    f"{max_megapixels:g} MP (setting max_megapixels)"
                )
            fmt = img.format or "unknown"
            exif = img.getexif()
            left_for_gpu = gpu_jpeg and fmt == "JPEG" and img.mode in ("RGB", "L") and _complete_jpeg(data)
            if left_for_gpu:
                rgb = None
            elif draft and fmt == "JPEG":
                img.draft("RGB", (draft, draft))
            if not left_for_gpu:
                img.seek(0)  # GIF/TIFF/HEIF sequences: the first frame
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except DecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError("not an image (unrecognised format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"truncated or corrupt image ({exc})") from exc
    orientation = exif.get(0x0112, 1)
    width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    info = img.info if hasattr(img, "info") else {}
    prompt = info.get(PROMPT_KEY)
    expected = EXPECTED_FORMAT.get(ext)
    note = None
    if (
        expected
        and ext not in RAW_EXTS
        and fmt not in (expected, "MPO")
        and not (expected == "HEIF" and fmt == "AVIF")
    ):
        note = f"named {ext} but the content is {fmt}"
    return Decoded(
        image=rgb,  # type: ignore[arg-type]  # None only when left for the GPU
        width=width,
        height=height,
        format=fmt,
        taken_at=_taken_at(exif),
        camera=_camera(exif),
        caption=prompt,
        generated=prompt is not None,
        note=note,
    )


def _complete_jpeg(data: bytes) -> bool:
    """Ends with the EOI marker: a truncated file goes to Pillow, which names the problem (nvJPEG
    would quietly fill the missing rows with grey)."""
    return data.rstrip(b"\0")[-2:] == b"\xff\xd9"


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(img, mask=img.getchannel("A"))  # transparent areas on white, not black
        return white
    if img.mode in ("I;16", "I;16B", "I"):
        arr = np.asarray(img, dtype=np.float32)
        img = Image.fromarray((arr / max(float(arr.max()), 1.0) * 255).astype(np.uint8))
    return img.convert("RGB")


def _taken_at(exif: Image.Exif) -> datetime | None:
    raw = exif.get_ifd(EXIF_IFD).get(TAG_DATETIME_ORIGINAL) or exif.get(TAG_DATETIME)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _camera(exif: Image.Exif) -> str | None:
    make = str(exif.get(TAG_MAKE, "")).strip("\x00 ").strip()
    model = str(exif.get(TAG_MODEL, "")).strip("\x00 ").strip()
    if model.lower().startswith(make.lower()):
        make = ""  # "Canon Canon EOS R5" reads badly
    return " ".join(p for p in (make, model) if p) or None


@dataclass
class PhotoRead:
    """What a decoding worker sends back to the writer for one file."""

    path: str
    size: int
    mtime: float
    content_hash: str | None = None
    pixels: np.ndarray | None = None  # model input, S x S x 3 uint8
    jpeg: bytes | None = None  # instead of pixels: a JPEG the writer decodes on the GPU
    decoded: Decoded | None = None  # metadata (its .image is dropped before crossing processes)
    error: str | None = None


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def read_photo(
    path: str, model_size: int, max_megapixels: float = 200.0, gpu_jpeg: bool = False
) -> PhotoRead:
    """Read, hash and decode one file. Never raises: a failure is PhotoRead.error.

    With `gpu_jpeg`, a JPEG comes back undecoded (PhotoRead.jpeg) for the GPU to decode."""
    out, data = read_bytes(path)
    if data is None:
        return out
    return decode_read(out, data, model_size, max_megapixels, gpu_jpeg)


def read_bytes(path: str) -> tuple[PhotoRead, bytes | None]:
    """A file's bytes and what its stat says; (PhotoRead with the error, None) when it cannot be read.
    Split from decoding so that a Ray driver can read and its workers decode (indexer/distributed/)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return PhotoRead(path, 0, 0.0, error=describe_os_error(exc, path)), None
    out = PhotoRead(path, st.st_size, st.st_mtime)
    if not stat.S_ISREG(st.st_mode):
        out.error = "not a regular file"  # a FIFO would block the reader forever
        return out, None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        out.error = describe_os_error(exc, path)
        return out, None
    return out, data


def decode_read(
    out: PhotoRead, data: bytes, model_size: int, max_megapixels: float = 200.0, gpu_jpeg: bool = False
) -> PhotoRead:
    """Hash and decode the bytes `read_bytes` gave for `out` (filled in and returned; never raises)."""
    out.size = len(data)
    out.content_hash = hash_bytes(data)
    try:
        decoded = decode_bytes(data, out.path, max_megapixels, draft=model_size, gpu_jpeg=gpu_jpeg)
        if decoded.image is None:
            out.jpeg = data
        else:
            out.pixels = fit_square(decoded.image, model_size)
    except DecodeError as exc:
        out.error = str(exc)
        return out
    except MemoryError:
        out.error = "out of memory while decoding"
        return out
    decoded.image = None  # type: ignore[assignment]  # the pixels are all the writer needs
    out.decoded = decoded
    return out


def read_photos(
    paths: list[str], model_size: int, max_megapixels: float = 200.0, gpu_jpeg: bool = False
) -> list[PhotoRead]:
    """read_photo over a few files: one task per chunk keeps the process pool's per-task cost
    (pickling, queues, a future) from capping small photos at a few thousand per second."""
    return [read_photo(p, model_size, max_megapixels, gpu_jpeg) for p in paths]


def describe_os_error(exc: OSError, path: str) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "vanished while being read"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "unreadable: permission denied"
    if exc.errno == errno.EISDIR:
        return "not a regular file"
    return f"unreadable: {exc.strerror or exc}"
