"""The fast decode path (JPEG draft mode: DCT-domain downscaling) against the dumb oracle: a full
decode followed by the same fit_square. Draft decoding is what makes 12 MP photos cheap to index, so
it must (a) really engage and (b) give the model nearly the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.corpus import _exif, photo
from indexer.decode import decode_bytes, read_photo
from indexer.preprocess import fit_square

MAX_MEAN_ABS_DIFF = 2.0  # of 255: well below what JPEG quality 90 itself changes
MAX_P99_ABS_DIFF = 12


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """(path, width, height): a 12 MP and a 3 MP photo-like JPEG, the 3 MP one EXIF-rotated."""
    folder = tmp_path_factory.mktemp("jpegs")
    out = []
    for i, (w, h) in ((1, (4000, 3000)), (5, (2048, 1536))):  # i=5: Orientation 6
        path = folder / f"IMG_{i}.jpg"
        photo(w, h, seed=i).save(path, "JPEG", quality=90, exif=_exif(i))
        out.append((path, w, h))
    return out


@pytest.mark.parametrize("size", [64, 224, 256])
def test_draft_matches_full_decode(jpegs, size):
    for path, w, h in jpegs:
        data = path.read_bytes()
        full = decode_bytes(data, path.name)
        fast = decode_bytes(data, path.name, draft=size)
        # Draft mode engaged: the image came out of the decoder reduced, but never below `size`.
        assert full.image.size[0] * full.image.size[1] == w * h
        assert min(fast.image.size) >= size
        assert fast.image.size[0] * fast.image.size[1] <= w * h / 4
        # Same metadata, same orientation (rotated: portrait), from either path.
        assert (fast.width, fast.height, fast.taken_at) == (full.width, full.height, full.taken_at)
        assert (fast.image.size[0] > fast.image.size[1]) == (full.image.size[0] > full.image.size[1])
        diff = np.abs(fit_square(fast.image, size).astype(np.int16) - fit_square(full.image, size))
        assert diff.mean() <= MAX_MEAN_ABS_DIFF, (path.name, size, diff.mean())
        assert np.percentile(diff, 99) <= MAX_P99_ABS_DIFF, (path.name, size, np.percentile(diff, 99))


def test_read_photo_uses_the_draft_path(jpegs):
    path, _, _ = jpegs[0]
    read = read_photo(str(path), 224)
    assert read.error is None and read.pixels is not None and read.pixels.shape == (224, 224, 3)
    oracle = fit_square(decode_bytes(path.read_bytes(), path.name).image, 224)
    assert np.abs(read.pixels.astype(np.int16) - oracle).mean() <= MAX_MEAN_ABS_DIFF


def test_a_rotated_photo_is_the_rotated_oracle(jpegs):
    """Orientation 6 is applied on the draft path too: compare with Pillow's raw decode turned by hand."""
    path, w, h = jpegs[1]
    fast = decode_bytes(path.read_bytes(), path.name, draft=256)
    assert (fast.width, fast.height) == (h, w)
    with Image.open(path) as raw:
        turned = raw.convert("RGB").transpose(Image.Transpose.ROTATE_270)  # 6: 90 degrees clockwise
    assert turned.size == (h, w)
    diff = np.abs(fit_square(fast.image, 256).astype(np.int16) - fit_square(turned, 256))
    assert diff.mean() <= MAX_MEAN_ABS_DIFF
