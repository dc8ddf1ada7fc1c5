"""decode: orientation, metadata, formats and the reasons it gives for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from indexer.decode import DecodeError, decode_bytes, read_photo


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _red_top_blue_bottom(w=40, h=20) -> Image.Image:
    img = Image.new("RGB", (w, h), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, w, h // 2))
    return img


def test_exif_orientation_is_applied_before_anything_looks():
    stored = _red_top_blue_bottom()  # landscape as stored; Orientation 6 = rotate 90 CW to display
    exif = Image.Exif()
    exif[0x0112] = 6
    d = decode_bytes(_save(stored, "JPEG", exif=exif.tobytes(), quality=95), "rot.jpg")
    assert (d.width, d.height) == (20, 40) and d.image.size == (20, 40)
    px = np.asarray(d.image).astype(int)
    # stored top (red) ends up on the right after a clockwise quarter turn
    assert px[20, 15, 0] > 200 and px[20, 15, 2] < 60
    assert px[20, 4, 2] > 200 and px[20, 4, 0] < 60


def test_exif_date_and_camera():
    exif = Image.Exif()
    exif[271], exif[272] = "Canon", "Canon EOS R5"
    exif.get_ifd(0x8769)[36867] = "2021:06:05 14:30:00"
    d = decode_bytes(_save(Image.new("RGB", (32, 32)), "JPEG", exif=exif.tobytes()), "a.jpg")
    assert d.taken_at.isoformat() == "2021-06-05T14:30:00"
    assert d.camera == "Canon EOS R5"


def test_png_prompt_chunk_becomes_caption():
    info = PngImagePlugin.PngInfo()
    info.add_text("photoseek:prompt", "a red circle")
    d = decode_bytes(_save(Image.new("RGB", (16, 16)), "PNG", pnginfo=info), "gen.png")
    assert d.caption == "a red circle" and d.generated


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    d = decode_bytes(_save(img, "PNG"), "t.png")
    assert np.asarray(d.image).min() == 255


def test_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    d = decode_bytes(buf.getvalue(), "anim.gif")
    assert np.asarray(d.image)[5, 5, 0] > 200


def test_heif_roundtrip():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = _save(Image.new("RGB", (64, 48), (250, 130, 20)), "HEIF")
    d = decode_bytes(data, "IMG_0001.HEIC")
    assert d.format == "HEIF" and (d.width, d.height) == (64, 48)


def test_draft_decoding_keeps_enough_pixels():
    big = Image.new("RGB", (2000, 1500), (10, 200, 30))
    d = decode_bytes(_save(big, "JPEG"), "big.jpg", draft=224)
    assert min(d.image.size) >= 224 and d.image.size[0] < 2000  # reduced in the DCT domain
    assert (d.width, d.height) == (2000, 1500)  # the photo's real size is still reported


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (_save(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:300], "truncated or corrupt"),
        (b"hello", "not an image"),
    ],
)
def test_reasons(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_bytes(data, "x.jpg")


def test_fifo_is_not_read(tmp_path):
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert read_photo(str(fifo), 64).error == "not a regular file"  # and does not block


def test_jpeg_left_for_the_gpu_carries_the_same_metadata(tmp_path):
    """With gpu_jpeg the worker ships the JPEG's bytes undecoded, and everything the catalog keeps
    about the photo (size as displayed, date, camera, format) is what a full decode reports."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[271], exif[272] = "Canon", "Canon EOS R5"
    exif.get_ifd(0x8769)[36867] = "2021:06:05 14:30:00"
    path = tmp_path / "rot.jpg"
    path.write_bytes(_save(_red_top_blue_bottom(), "JPEG", exif=exif.tobytes(), quality=95))
    cpu, gpu = read_photo(str(path), 16), read_photo(str(path), 16, gpu_jpeg=True)
    assert cpu.jpeg is None and cpu.pixels is not None
    assert gpu.pixels is None and gpu.jpeg == path.read_bytes()
    assert gpu.content_hash == cpu.content_hash and gpu.error is None
    for name in ("width", "height", "format", "taken_at", "camera", "note"):
        assert getattr(gpu.decoded, name) == getattr(cpu.decoded, name), name
    assert (gpu.decoded.width, gpu.decoded.height) == (20, 40)


@pytest.mark.parametrize(
    "name, data",
    [
        ("truncated.jpg", _save(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:-300]),
        ("cmyk.jpg", _save(Image.new("CMYK", (32, 32), (0, 50, 100, 0)), "JPEG")),
        ("photo.png", _save(Image.new("RGB", (32, 32)), "PNG")),
    ],
)
def test_what_nvjpeg_should_not_see_is_decoded_by_pillow(tmp_path, name, data):
    """Truncated JPEGs (nvJPEG would grey-fill them silently), CMYK and other formats never take the
    GPU path: Pillow decodes them, or names the problem, as on a CPU-only machine."""
    path = tmp_path / name
    path.write_bytes(data)
    cpu, gpu = read_photo(str(path), 16), read_photo(str(path), 16, gpu_jpeg=True)
    assert gpu.jpeg is None
    assert gpu.error == cpu.error
    assert (gpu.pixels is None) == (cpu.pixels is None)
    if name == "truncated.jpg":
        assert "truncated" in gpu.error
