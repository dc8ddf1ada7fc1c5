"""The ONNX Runtime towers against the torch encoder (the reference), with the toy CLIP exported to a
tmp dir: vectors (cosine), the toy library's text-search rankings (recall@10), and no torch at run time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from indexer.decode import read_photo
from indexer.onnx_export import MANIFEST, export
from indexer.onnx_towers import OnnxImageTower, OnnxManifest, OnnxModelError, OnnxTextTower
from indexer.toyworld import COLOURS, SHAPES

QUERIES = [f"a {colour} {shape}" for colour in COLOURS for shape in SHAPES]  # the 32 toy-world kinds
FP32_COSINE = 0.9999
# int8 dynamic quantisation of the toy CLIP, measured over the 320-image library (batches of 64): image
# cosine to torch min 0.99972 (mean 0.99992), text min 0.99990; recall@10 of the 32 queries 0.984.
# Bounds with a margin:
INT8_COSINE = 0.995
INT8_RECALL = 0.9


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "toy"
    export("toy", folder, int8=True)
    return folder


@pytest.fixture(scope="module")
def pixels(library, toy_encoder) -> np.ndarray:
    """The library's photos as the writer feeds them to a tower (decoded, oriented, fit_square'd)."""
    paths = sorted(str(p) for p in library.rglob("*") if p.suffix in (".jpg", ".png"))
    reads = [read_photo(p, toy_encoder.image_size) for p in paths]
    assert all(r.error is None for r in reads)
    return np.stack([r.pixels for r in reads])


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def _recall_at_10(ref_images, ref_texts, got_images, got_texts) -> float:
    top = lambda im, tx: np.argsort(-(tx @ im.T), axis=1, kind="stable")[:, :10]  # noqa: E731
    ref, got = top(ref_images, ref_texts), top(got_images, got_texts)
    return float(np.mean([len(set(r) & set(g)) / 10 for r, g in zip(ref, got, strict=True)]))


def test_manifest_carries_what_running_needs(exported, toy_encoder):
    doc = json.loads((exported / MANIFEST).read_text())
    m = OnnxManifest.load(exported)
    assert m.identity() == toy_encoder.identity  # the catalog sees the same model either way
    assert m.image_size == toy_encoder.image_size == 64
    assert m.context_length == 16 and m.text_trim
    assert m.has("fp32") and m.has("int8")
    assert doc["logit_scale"] == pytest.approx(toy_encoder.logit_scale)
    for files in doc["files"].values():
        assert all((exported / name).is_file() for name in files.values())


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_image_vectors_equal_torchs(exported, toy_encoder, pixels, precision):
    tower = OnnxImageTower(exported, threads=2, precision=precision)
    ref = toy_encoder.encode_pixels(pixels)
    got = np.concatenate([tower.encode_pixels(pixels[i : i + 64]) for i in range(0, len(pixels), 64)])
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _min_cosine(ref, got) > (FP32_COSINE if precision == "fp32" else INT8_COSINE)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_text_vectors_equal_torchs(exported, toy_encoder, precision):
    tower = OnnxTextTower(exported, threads=2, precision=precision)
    texts = [
        *QUERIES,
        "blue background",
        "a photo",
        "",
        "Été: a RED circle!!",
        "a " + "very " * 40 + "long one",
    ]
    ref, got = toy_encoder.encode_texts(texts), tower.encode_texts(texts)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert _min_cosine(ref, got) > (FP32_COSINE if precision == "fp32" else INT8_COSINE)
    assert tower.logit_scale == pytest.approx(toy_encoder.logit_scale)
    # one at a time (other token counts than in the batch) gives the batch's rows; int8 only nearly:
    # dynamic quantisation scales activations per batch, so a row depends a little on its batch-mates
    single = np.concatenate([tower.encode_texts([t]) for t in texts[-3:]])
    assert _min_cosine(single, got[-3:]) > (0.99999 if precision == "fp32" else INT8_COSINE)


@pytest.mark.parametrize(("precision", "bound"), [("fp32", 0.99), ("int8", INT8_RECALL)])
def test_text_search_rankings_equal_torchs(exported, toy_encoder, pixels, precision, bound):
    image_tower = OnnxImageTower(exported, threads=2, precision=precision)
    text_tower = OnnxTextTower(exported, threads=2, precision=precision)
    recall = _recall_at_10(
        toy_encoder.encode_pixels(pixels),
        toy_encoder.encode_texts(QUERIES),
        image_tower.encode_pixels(pixels),
        text_tower.encode_texts(QUERIES),
    )
    assert recall >= bound, recall


def test_empty_batches_and_wrong_shapes(exported):
    image_tower, text_tower = OnnxImageTower(exported, threads=1), OnnxTextTower(exported, threads=1)
    assert image_tower.encode_pixels(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 128)
    assert text_tower.encode_texts([]).shape == (0, 128)
    with pytest.raises(ValueError, match="64 x 64 x 3"):
        image_tower.encode_pixels(np.zeros((2, 32, 32, 3), np.uint8))


def test_missing_export_says_how_to_make_one(tmp_path, exported):
    with pytest.raises(OnnxModelError, match="export"):
        OnnxImageTower(tmp_path / "nothing")
    partial = tmp_path / "fp32-only"
    partial.mkdir()
    doc = json.loads((exported / MANIFEST).read_text())
    doc["files"].pop("int8")
    (partial / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(OnnxModelError, match="int8=True"):
        OnnxTextTower(partial, precision="int8")


def test_runs_without_torch(exported):
    """The point of the backend: a process that embeds and searches never imports torch."""
    code = (
        "import sys, numpy as np\n"
        "from indexer.onnx_towers import OnnxImageTower, OnnxTextTower\n"
        f"folder = {str(exported)!r}\n"
        "img = OnnxImageTower(folder, threads=1).encode_pixels(np.zeros((2, 64, 64, 3), np.uint8))\n"
        "txt = OnnxTextTower(folder, threads=1).encode_texts(['a red circle'])\n"
        "print(img.shape, txt.shape, 'torch' in sys.modules, 'open_clip' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(2, 128) (1, 128) False False"


def test_onnx_encoder_is_a_lazy_drop_in_for_the_torch_encoder(exported, toy_encoder, pixels):
    from PIL import Image

    from indexer.onnx_encoder import OnnxEncoder

    enc = OnnxEncoder(exported, threads=2)
    assert enc.loaded == ()  # nothing loaded until asked
    assert (enc.identity, enc.image_size, enc.device) == (toy_encoder.identity, toy_encoder.image_size, "cpu")
    assert enc.logit_scale == pytest.approx(toy_encoder.logit_scale)
    assert _min_cosine(enc.encode_texts(QUERIES), toy_encoder.encode_texts(QUERIES)) > FP32_COSINE
    assert enc.loaded == ("text",)  # a text query loads the text tower only
    assert _min_cosine(enc.encode_pixels(pixels[:8]), toy_encoder.encode_pixels(pixels[:8])) > FP32_COSINE
    images = [Image.fromarray(p).resize((96, 80)) for p in pixels[:4]]
    assert _min_cosine(enc.encode_images(images), toy_encoder.encode_images(images)) > FP32_COSINE
    enc.release_text_tower()
    assert enc.loaded == ("image",)
    assert enc.encode_texts(["a red circle"]).shape == (1, 128)  # loaded again on demand
