"""Deterministic, photo-like JPEG corpora for the indexing benchmarks, cached under /tmp.

A photo here is a smooth gradient (sky, light falloff) with soft shapes and sensor-like noise, saved
at quality 90 so that file sizes are those of camera JPEGs (a 12 MP file is ~3-5 MB; flat synthetic
images would be ~10x smaller and decode unrealistically fast). Every fifth file carries EXIF
Orientation 6 (rotated 90 degrees), all carry a date and a camera.

    python -m bench.corpus 12mp 3mp 0.3mp --count 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CACHE = Path("/tmp/photoseek-bench")
VERSION = 1  # bump when the generator changes: cached corpora are then rebuilt
DONE = "corpus.json"


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    width: int
    height: int


SPECS = {
    "12mp": CorpusSpec("12mp", 4000, 3000),
    "3mp": CorpusSpec("3mp", 2048, 1536),
    "0.3mp": CorpusSpec("0.3mp", 640, 480),
}


def photo(width: int, height: int, seed: int) -> Image.Image:
    """One photo-like RGB image, the same for the same (size, seed)."""
    rng = np.random.default_rng(seed)
    # Composition at 1/8 size (cheap), then scaled up: big smooth areas as in real photos.
    sw, sh = max(8, width // 8), max(8, height // 8)
    y = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, sw, dtype=np.float32)[None, :, None]
    top, bottom, side = (rng.uniform(0, 255, 3).astype(np.float32) for _ in range(3))
    base = top * (1 - y) + bottom * y + (side - 128) * 0.3 * x
    small = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(small)
    for _ in range(rng.integers(4, 12)):
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        r = rng.uniform(0.03, 0.25) * min(sw, sh)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    small = small.filter(ImageFilter.GaussianBlur(1.2))
    big = np.asarray(small.resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
    # Fine texture + noise: what makes camera JPEGs big and slow to decode.
    noise = rng.integers(-9, 10, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8))


def _exif(i: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchCam", f"Model {i % 3}"  # Make, Model
    exif[0x0132] = f"2024:0{1 + i % 9}:1{i % 10} 12:00:00"  # DateTime
    if i % 5 == 0:
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return exif


def _write_one(args: tuple[Path, int, int, int]) -> int:
    folder, width, height, i = args
    path = folder / f"IMG_{i:05d}.jpg"
    photo(width, height, seed=i).save(path, "JPEG", quality=90, exif=_exif(i))
    return path.stat().st_size


def corpus(name: str, count: int, processes: int = 2) -> Path:
    """The folder of `count` JPEGs of corpus `name`, generated once and then reused."""
    spec = SPECS[name]
    folder = CACHE / f"{spec.name}-{count}-v{VERSION}"
    if (folder / DONE).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jobs = [(folder, spec.width, spec.height, i) for i in range(count)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        sizes = pool.map(_write_one, jobs, chunksize=4)
    meta = {"spec": spec.__dict__, "count": count, "bytes": sum(sizes), "version": VERSION}
    (folder / DONE).write_text(json.dumps(meta))
    return folder


def describe(folder: Path) -> dict:
    return json.loads((folder / DONE).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", choices=sorted(SPECS))
    ap.add_argument("--count", type=int, default=20)
    args = ap.parse_args()
    for name in args.names:
        folder = corpus(name, args.count)
        meta = describe(folder)
        print(f"{folder}: {meta['count']} files, {meta['bytes'] / meta['count'] / 1e6:.2f} MB each")


if __name__ == "__main__":
    main()
