"""Which files are photos, and the optional decoders for HEIF and camera RAW."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

RASTER_EXTS = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp"}
HEIF_EXTS = {".heic", ".heif", ".hif", ".avif"}
RAW_EXTS = {".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"}
PHOTO_EXTS = RASTER_EXTS | HEIF_EXTS | RAW_EXTS

# What Pillow calls the format a well-named file of that extension holds.
EXPECTED_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
}

NO_HEIF = "no HEIF decoder; install photoseek[heif] (pillow-heif)"
NO_RAW = "no camera RAW decoder; install photoseek[raw] (rawpy)"

_heif_state: bool | None = None


def heif_available() -> bool:
    """Register pillow-heif's opener once; False if it is not installed."""
    global _heif_state
    if _heif_state is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_state = True
        except ImportError:
            _heif_state = False
    return _heif_state


def raw_preview(data: bytes) -> bytes:
    """The JPEG preview a camera embeds in its RAW file (full decoding would take seconds per photo)."""
    try:
        import rawpy
    except ImportError as exc:
        raise LookupError(NO_RAW) from exc
    import io

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError) as exc:
        raise ValueError("RAW file has no usable embedded preview") from exc
    except rawpy.LibRawError as exc:
        raise ValueError(f"not a readable RAW file ({exc})") from exc
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return bytes(thumb.data)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(thumb.data).save(buf, format="PNG")
    return buf.getvalue()
