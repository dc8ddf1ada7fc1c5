"""One photo in each supported format goes through the indexer; a missing decoder is explained once.

RAW: no valid camera RAW file can be made here (LibRaw needs a real camera's DNG/CR2 with its
embedded preview, and none is committed), so the RAW path is tested with files LibRaw rejects and
with rawpy hidden, asserting the reason recorded for each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from indexer.catalog.schema import FAILED, OK, Image
from indexer.formats import NO_HEIF, NO_RAW
from tests.conftest import index_library
from tests.watch_support import library_files

PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")


def _rows(catalog) -> dict[str, Image]:
    with catalog.session() as s:
        return {Path(im.path).name: im for im in s.scalars(select(Image))}


@pytest.fixture
def one_of_each(tmp_path, library) -> tuple[Path, PILImage.Image, PILImage.Image]:
    import pillow_heif

    root = tmp_path / "formats"
    root.mkdir()
    files = library_files(library)
    first = PILImage.open(files[0]).convert("RGB")
    other = PILImage.open(files[7]).convert("RGB")
    first.save(root / "a.jpg", quality=92)
    first.save(root / "b.png")
    first.save(root / "c.webp", quality=90)
    first.save(root / "d.tiff")
    first.save(root / "e.bmp")
    first.save(root / "f.gif", save_all=True, append_images=[other], duration=100)  # 2 frames
    pillow_heif.from_pillow(first).save(root / "g.heic", quality=90)
    (root / "h.dng").write_bytes(b"II*\x00" + os.urandom(2000))  # a TIFF header, then noise
    return root, first, other


def test_every_format_is_indexed(tmp_path, one_of_each, toy_encoder):
    root, first, other = one_of_each
    indexed_lib, summary = index_library(tmp_path / "data", [root], toy_encoder)
    settings = indexed_lib.settings
    catalog = indexed_lib.catalog
    rows = _rows(catalog)
    expected = {"a.jpg": "JPEG", "b.png": "PNG", "c.webp": "WEBP", "d.tiff": "TIFF", "e.bmp": "BMP"}
    expected |= {"f.gif": "GIF", "g.heic": "HEIF"}
    for name, fmt in expected.items():
        assert rows[name].status == OK, (name, rows[name].error)
        assert rows[name].format == fmt
        assert (rows[name].width, rows[name].height) == first.size
    assert summary.new == len(expected)

    # A GIF is indexed by its first frame: its vector is the first frame's, not the second's.
    from indexer.vectors import VectorIndex

    vi = VectorIndex.open(catalog, settings.layout.vectors, toy_encoder.identity)
    gif = vi.vector(rows["f.gif"].id)
    want, not_want = toy_encoder.encode_images([first, other])
    assert float(np.dot(gif, want)) > float(np.dot(gif, not_want))

    raw = rows["h.dng"]
    assert raw.status == FAILED and raw.error.startswith("not a readable RAW file")


@pytest.mark.slow
def test_a_missing_decoder_is_explained_once(tmp_path, library):
    """pillow-heif and rawpy hidden: every HEIC/RAW file is recorded with the reason, said once."""
    import pillow_heif

    root = tmp_path / "photos"
    root.mkdir()
    src = PILImage.open(library_files(library)[0]).convert("RGB")
    for i in range(3):
        pillow_heif.from_pillow(src.rotate(i * 90)).save(root / f"h{i}.heic")
        (root / f"r{i}.dng").write_bytes(b"II*\x00" + bytes([i]) * 100)
    src.save(root / "ok.jpg")
    hide = tmp_path / "hide"
    hide.mkdir()
    # None in sys.modules makes `import pillow_heif` raise ImportError, as when it is not installed
    (hide / "sitecustomize.py").write_text(
        'import sys\nsys.modules["pillow_heif"] = None\nsys.modules["rawpy"] = None\n'
    )
    env = {**os.environ, "PYTHONPATH": str(hide), "PHOTOSEEK_WORKERS": "0", "OMP_NUM_THREADS": "2"}
    data = tmp_path / "data"
    proc = subprocess.run(
        [PHOTOSEEK, "--data-dir", str(data), "--model", "toy", "watch", "--scan-only", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stderr
    assert log.count(NO_HEIF) == 2  # the first file's line, and the count at the end
    assert log.count(NO_RAW) == 2
    assert "Traceback" not in log
    assert f"3 files skipped: {NO_HEIF}" in log

    from indexer.catalog import open_catalog

    rows = _rows(open_catalog(data))
    assert rows["ok.jpg"].status == OK
    assert {rows[f"h{i}.heic"].error for i in range(3)} == {NO_HEIF}
    assert {rows[f"r{i}.dng"].error for i in range(3)} == {NO_RAW}
