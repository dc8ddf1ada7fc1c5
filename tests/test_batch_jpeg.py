"""JPEGs decoded in batches by the writer (indexer/gpu_decode.py): nvJPEG on a CUDA machine, and the
same torchvision code path with its CPU decoder everywhere else, so that CI checks the plumbing the
GPU uses. Pillow's path (the workers' decode) is the oracle."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from indexer.catalog.schema import Embedding
from indexer.catalog.schema import Image as ImageRow
from indexer.decode import decode_bytes
from indexer.gpu_decode import GpuJpegDecoder
from indexer.preprocess import fit_square
from tests.conftest import library_for, make_settings

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")],
    ),
]


class CountingDecoder(GpuJpegDecoder):
    """The real decoder, counting what it was given: proof the batch path ran."""

    seen = calls = 0

    def decode(self, jpegs):
        self.seen += len(jpegs)
        self.calls += 1
        return super().decode(jpegs)


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("device", DEVICES)
def test_decode_and_fit_match_pillow(library, device):
    """Model inputs within a few grey levels of Pillow's (both resize with antialiased bicubic; the
    workers' draft decoding and the rounding differ a little), EXIF orientation included."""
    files = sorted(library.rglob("*.jpg"))[:24]
    datas = [p.read_bytes() for p in files]
    rotated = Image.new("RGB", (300, 200), (0, 0, 255))
    rotated.paste((255, 0, 0), (0, 0, 300, 100))  # red top as stored: on the right once turned
    exif = Image.Exif()
    exif[0x0112] = 6
    datas.append(_jpeg(rotated, exif=exif.tobytes(), quality=95))
    decoder = GpuJpegDecoder(224, device)
    images = decoder.decode(datas)
    assert all(img is not None for img in images)
    got = decoder.fit(images).cpu().numpy().astype(int)
    want = np.stack([fit_square(decode_bytes(d, "x.jpg").image, 224) for d in datas]).astype(int)
    assert got.shape == want.shape == (25, 224, 224, 3)
    assert np.abs(got - want).mean() < 3.0
    assert got[-1, 112, 200, 0] > 200 and got[-1, 112, 20, 2] > 200  # red right, blue left


@pytest.mark.parametrize("device", DEVICES)
def test_one_bad_file_does_not_fail_the_batch(library, device):
    good = next(library.rglob("*.jpg")).read_bytes()
    out = GpuJpegDecoder(224, device).decode([good, b"\xff\xd8 not a jpeg \xff\xd9", good])
    assert out[1] is None and out[0] is not None and out[2] is not None


@pytest.mark.parametrize("max_pixels", [None, 1.0])
@pytest.mark.parametrize("device", DEVICES)
def test_library_indexed_through_batch_decoding_matches_pillow(
    tmp_path, fresh_library, toy_encoder, device, max_pixels
):
    """The same library (with a truncated JPEG, a CMYK JPEG and a PNG added) indexed by the workers
    with Pillow and through the writer's batch decoder: the same rows, metadata and failure reasons,
    and embeddings that agree (cosine > 0.98 per photo)."""
    from indexer.encoder import load_encoder

    (fresh_library / "cut.jpg").write_bytes(_jpeg(Image.new("RGB", (64, 64), (9, 90, 9)))[:-300])
    (fresh_library / "cmyk.jpg").write_bytes(_jpeg(Image.new("CMYK", (64, 64), (0, 90, 200, 0))))
    Image.new("RGB", (64, 64), (200, 9, 9)).save(fresh_library / "flat.png")

    def index(name: str, encoder, decoder: GpuJpegDecoder | None):
        library = library_for(make_settings(tmp_path / name, workers=2, batch_size=16), encoder)
        catalog = library.catalog
        writer = library.writer()
        writer.embedder.use_jpeg_decoder(decoder)
        summary = writer.index_roots([fresh_library])
        with catalog.session() as s:
            rows = {
                im.path: (im.width, im.height, im.taken_at, im.camera, im.status, im.error, im.content_hash)
                for im in s.scalars(select(ImageRow))
            }
            vecs = {e.content_hash: np.frombuffer(e.vector, np.float32) for e in s.scalars(select(Embedding))}
        catalog.close()
        return summary, rows, vecs

    encoder = toy_encoder if device == "cpu" else load_encoder("toy", device)
    _, want_rows, want_vecs = index("pillow", toy_encoder, None)
    decoder = CountingDecoder(encoder.image_size, device)
    if max_pixels is not None:  # a photo per nvJPEG call, as big photos on a small GPU get
        decoder.max_pixels = max_pixels
    summary, rows, vecs = index("batch", encoder, decoder)
    jpegs = {row[6] for path, row in rows.items() if path.endswith(".jpg") and row[4] == "ok"}
    assert decoder.seen >= len(jpegs) - 1, (decoder.seen, len(jpegs))  # all but CMYK went through it
    assert (decoder.calls == decoder.seen) == (max_pixels is not None)
    assert rows == want_rows and vecs.keys() == want_vecs.keys()
    assert dict(summary.failed) == {"truncated or corrupt image": 1}
    assert rows[str(fresh_library / "cmyk.jpg")][4] == "ok"  # nvJPEG never sees CMYK: Pillow takes it
    cos = [float(want_vecs[h] @ vecs[h]) for h in want_vecs]
    assert min(cos) > 0.98, sorted(cos)[:5]
