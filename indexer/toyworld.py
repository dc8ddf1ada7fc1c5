"""A synthetic "toy world" of drawn photos: one coloured shape on a plain background.

Tests need real semantics without downloading weights: a tiny CLIP (indexer/toyclip) is trained on
these images, and `build_library` writes a fake photo library (albums, EXIF dates, cameras) with a
manifest of ground truth. numpy + Pillow only, so importing it stays fast and torch-free.

Every concept is a short English phrase: a colour ("red"), a shape ("circle"), both ("red circle"),
a background ("blue background") and a size ("small"/"large", in captions and the manifest only).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Object colours: far enough apart that +-18 shade jitter keeps every pair distinct.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 35),
    "green": (35, 165, 55),
    "blue": (35, 70, 225),
    "yellow": (245, 220, 35),
    "orange": (250, 135, 20),
    "purple": (135, 45, 170),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "large")

# Backgrounds: a lighter shade than the object colour of the same name, and never combined with it.
BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "blue background": (95, 145, 220),
    "green background": (105, 175, 85),
    "grey background": (128, 128, 128),
    "white background": (236, 236, 230),
}
BACKGROUNDS: tuple[str, ...] = tuple(BACKGROUND_RGB)
# The object colour each background must not be paired with.
_BACKGROUND_CLASH = {"blue background": "blue", "green background": "green", "white background": "white"}

# (album folder, first day, days spanned, camera index): some names are unicode on purpose.
_ALBUMS: tuple[tuple[str, dt.date, int, int], ...] = (
    ("Été 2024", dt.date(2024, 7, 2), 40, 0),
    ("Tokyo 2023", dt.date(2023, 4, 1), 12, 1),
    ("Garden", dt.date(2021, 3, 1), 600, 2),
    ("Zürich Weekend", dt.date(2022, 10, 14), 3, 0),
    ("Birthday party 2020", dt.date(2020, 5, 16), 1, 1),
    ("2019/Beach week", dt.date(2019, 8, 10), 7, 2),
    ("Misc", dt.date(2019, 1, 1), 2000, 0),
)
CAMERAS: tuple[tuple[str, str], ...] = (
    ("Toycam", "TC-1"),
    ("Pixelar", "P2 Mark II"),
    ("Lumo", "X100"),
)
LIBRARY_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (240, 320), (256, 256), (300, 240), (288, 256))


@dataclass(frozen=True)
class Spec:
    """What one image shows; everything else about it (position, angle, shade, noise) is jitter."""

    colour: str
    shape: str
    background: str
    size: str = "large"

    def __post_init__(self) -> None:
        if self.colour not in COLOUR_RGB or self.shape not in SHAPES or self.size not in SIZES:
            raise ValueError(f"unknown concept in {self}")
        if self.background not in BACKGROUND_RGB:
            raise ValueError(f"unknown background {self.background!r}")
        if _BACKGROUND_CLASH.get(self.background) == self.colour:
            raise ValueError(f"a {self.colour} object on a {self.background} would be invisible")


def all_specs() -> list[Spec]:
    """Every valid Spec, in a fixed order."""
    return [
        Spec(c, s, b, z)
        for c in COLOURS
        for s in SHAPES
        for b in BACKGROUNDS
        for z in SIZES
        if _BACKGROUND_CLASH.get(b) != c
    ]


def sample_spec(rng: np.random.Generator) -> Spec:
    """Uniform over colour, shape and size; background uniform among those that do not clash."""
    colour = COLOURS[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    size = SIZES[rng.integers(len(SIZES))]
    allowed = [b for b in BACKGROUNDS if _BACKGROUND_CLASH.get(b) != colour]
    return Spec(colour, shape, allowed[rng.integers(len(allowed))], size)


def concepts_of(spec: Spec) -> list[str]:
    """Ground-truth tag phrases of an image, e.g. ["red", "circle", "red circle", "blue background"]."""
    return [spec.colour, spec.shape, f"{spec.colour} {spec.shape}", spec.background]


def caption(spec: Spec, rng: np.random.Generator | None = None) -> str:
    """A full description; canonical without rng, else one of several phrasings."""
    obj = f"{spec.colour} {spec.shape}"
    if rng is None:
        return f"a {spec.size} {obj} on a {spec.background}"
    templates = (
        "a {obj} on a {bg}",
        "a photo of a {obj} on a {bg}",
        "a {size} {obj} on a {bg}",
        "a photo of a {size} {obj}",
        "a picture of a {obj}",
        "{obj}",
        "a {obj}",
        "a {bg} with a {obj}",
    )
    text = templates[rng.integers(len(templates))]
    return text.format(obj=obj, bg=spec.background, size=spec.size)


# Noise is cropped from one fixed tile: drawing fresh gaussian noise per image would cost more than
# the drawing itself, and a fixed tile keeps build_library deterministic for a seed.
_NOISE_TILE: np.ndarray | None = None


def _noise_tile() -> np.ndarray:
    global _NOISE_TILE
    if _NOISE_TILE is None:
        noise = np.random.default_rng(12345).normal(0.0, 1.0, size=(640, 640, 3))
        _NOISE_TILE = noise.astype(np.float32)
    return _NOISE_TILE


# Farthest point from the centre per unit "radius": evens out the visible area of the shapes.
_EXTENT = {"circle": 1.0, "square": 1.13, "triangle": 1.2, "star": 1.2}


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    outer = r * _EXTENT[shape]
    if shape == "square":
        radii, corners = [outer] * 4, 4
    elif shape == "triangle":
        radii, corners = [outer] * 3, 3
    elif shape == "star":
        radii, corners = [outer, outer * 0.42] * 5, 10
    else:
        raise ValueError(shape)
    step = 2 * math.pi / corners
    return [
        (cx + rad * math.cos(angle + k * step), cy + rad * math.sin(angle + k * step))
        for k, rad in enumerate(radii)
    ]


def render(
    spec: Spec, size: tuple[int, int] = (320, 240), rng: np.random.Generator | None = None
) -> Image.Image:
    """Draw `spec` as an RGB image of `size` (w, h), with jitter from `rng`.

    The object stays inside the central min(w, h) square, because CLIP preprocessing centre-crops.
    """
    rng = rng if rng is not None else np.random.default_rng()
    w, h = size
    side = min(w, h)
    x0, y0 = (w - side) / 2, (h - side) / 2

    def shade(rgb: tuple[int, int, int], spread: float) -> tuple[int, int, int]:
        jitter = rng.uniform(-spread, spread, size=3) + rng.uniform(-spread, spread)  # hue + brightness
        return tuple(int(v) for v in np.clip(np.array(rgb) + jitter, 0, 255))

    bg = shade(BACKGROUND_RGB[spec.background], 10)
    image = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(image)

    # Modest jitter: a from-scratch ViT learns shapes far faster when objects sit near the centre
    # and roughly upright, and nothing downstream needs rotation or translation invariance.
    frac = rng.uniform(0.16, 0.21) if spec.size == "small" else rng.uniform(0.28, 0.36)
    r = frac * side
    slack = max(0.0, min(0.12 * side, side / 2 - r * _EXTENT[spec.shape] - 0.04 * side))
    cx = x0 + side / 2 + rng.uniform(-slack, slack)
    cy = y0 + side / 2 + rng.uniform(-slack, slack)
    fill = shade(COLOUR_RGB[spec.colour], 12)
    if spec.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        upright = math.pi / 4 if spec.shape == "square" else -math.pi / 2
        angle = upright + rng.uniform(-0.3, 0.3)
        draw.polygon(_polygon(spec.shape, cx, cy, r, angle), fill=fill)

    # Light noise plus a gentle brightness gradient so no two images are pixel-identical.
    tile = _noise_tile()
    ox, oy = int(rng.integers(0, tile.shape[1] - w + 1)), int(rng.integers(0, tile.shape[0] - h + 1))
    # In-place float32 steps: this runs for every training image, so allocations matter.
    pixels = tile[oy : oy + h, ox : ox + w] * np.float32(rng.uniform(2.0, 6.0))
    pixels += np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :, None] * np.float32(rng.uniform(-10, 10))
    pixels += np.asarray(image)
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _exif_bytes(taken: dt.datetime, make: str, model: str) -> bytes:
    exif = Image.Exif()
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x010F] = make  # Make
    exif[0x0110] = model  # Model
    exif[0x0132] = stamp  # DateTime
    sub = exif.get_ifd(0x8769)  # Exif sub-IFD
    sub[0x9003] = stamp  # DateTimeOriginal
    sub[0x9004] = stamp  # DateTimeDigitized
    return exif.tobytes()


def build_library(root: Path, n: int, seed: int) -> list[dict]:
    """Write `n` toy photos under `root` in album folders plus `root/manifest.jsonl`; return the records.

    Deterministic for a seed. About 85% are JPEGs with EXIF DateTimeOriginal and camera Make/Model;
    the rest are PNGs without EXIF (their taken_at and camera are None).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    records: list[dict] = []
    counters: dict[str, int] = {}
    for _ in range(n):
        spec = sample_spec(rng)
        album, first_day, span, cam_idx = _ALBUMS[rng.integers(len(_ALBUMS))]
        size = LIBRARY_SIZES[rng.integers(len(LIBRARY_SIZES))]
        image = render(spec, size, rng)
        is_png = rng.random() < 0.15
        taken = dt.datetime.combine(first_day, dt.time(8)) + dt.timedelta(
            days=int(rng.integers(span)), seconds=int(rng.integers(12 * 3600))
        )
        # Albums mostly use one camera, sometimes another (a friend's photos).
        if rng.random() < 0.2:
            cam_idx = int(rng.integers(len(CAMERAS)))
        make, model = CAMERAS[cam_idx]
        text = caption(spec, rng)

        number = counters.get(album, 0) + 1
        counters[album] = number
        name = f"IMG_{number:04d}.png" if is_png else f"IMG_{number:04d}.jpg"
        rel = f"{album}/{name}"
        path = root / album / name
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        if is_png:
            image.save(buf, format="PNG", compress_level=1)
        else:
            image.save(
                buf, format="JPEG", quality=int(rng.integers(82, 95)), exif=_exif_bytes(taken, make, model)
            )
        path.write_bytes(buf.getvalue())

        records.append(
            {
                "path": rel,
                **asdict(spec),
                "concepts": concepts_of(spec),
                "caption": text,
                "taken_at": None if is_png else taken.isoformat(),
                "camera": None if is_png else f"{make} {model}",
                "make": None if is_png else make,
                "model": None if is_png else model,
                "width": size[0],
                "height": size[1],
                "format": "PNG" if is_png else "JPEG",
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return records
