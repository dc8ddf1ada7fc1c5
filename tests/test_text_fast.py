"""The short-text path of Encoder.encode_texts against the oracle: open_clip's own encode_text over
all context positions. Cutting the padding after the end-of-text token must not change a vector."""

from __future__ import annotations

import numpy as np
import torch

from indexer.encoder import _unit

TEXTS = [
    "a red circle",
    "a blue square on a green background",
    "",
    "a very long query " * 20,  # truncated by the tokenizer at the context length: nothing to cut
]


def test_short_text_path_matches_the_full_context(toy_encoder):
    with torch.inference_mode():
        oracle = _unit(toy_encoder.model.encode_text(toy_encoder.tokenizer(TEXTS)))
    batch = toy_encoder.encode_texts(TEXTS)
    one_by_one = np.vstack([toy_encoder.encode_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, oracle, atol=1e-5)
    np.testing.assert_allclose(one_by_one, oracle, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3  # different texts, different vectors


def test_bf16_text_tower_agrees_with_fp32_and_leaves_images_alone(toy_encoder, library):
    """On CPUs with bf16 instructions big text towers run in bf16 (about twice as fast: a query's
    latency is mostly the text tower). The vectors must stay those of fp32, and the image tower
    must not change at all (the library's embeddings were made in fp32)."""
    from PIL import Image

    from indexer.encoder import load_encoder

    bf16 = load_encoder("toy", "cpu", text_bf16=True)
    assert bf16.model.transformer.get_cast_dtype() == torch.bfloat16
    assert toy_encoder.model.transformer.get_cast_dtype() == torch.float32  # the toy is too small to gain
    texts = [f"a {c} {s}" for c in ("red", "blue", "green") for s in ("circle", "square", "star")]
    a, b = toy_encoder.encode_texts(texts), bf16.encode_texts(texts)
    assert np.min(np.sum(a * b, axis=1)) > 0.999
    images = [Image.open(p).convert("RGB") for p in sorted(library.rglob("*.jpg"))[:8]]
    np.testing.assert_array_equal(bf16.encode_images(images), toy_encoder.encode_images(images))
    ia = toy_encoder.encode_images(images)
    assert ((ia @ a.T).argmax(axis=1) == (ia @ b.T).argmax(axis=1)).all()  # same best label per image


def test_released_text_tower_comes_back_on_demand(library):
    """The indexer frees the text tower while it embeds images; a later text query loads it again
    from the same weights and gets the same vectors."""
    from PIL import Image

    from indexer.encoder import load_encoder

    enc = load_encoder("toy", "cpu")
    before = enc.encode_texts(["a red circle", "a star"])
    images = [Image.open(p).convert("RGB") for p in sorted(library.rglob("*.jpg"))[:4]]
    want = enc.encode_images(images)
    enc.release_text_tower()
    assert enc.model.transformer is None and enc.model.token_embedding is None
    np.testing.assert_array_equal(enc.encode_images(images), want)
    np.testing.assert_allclose(enc.encode_texts(["a red circle", "a star"]), before, atol=1e-6)
    assert enc.model.transformer is not None
