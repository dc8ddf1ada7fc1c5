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
