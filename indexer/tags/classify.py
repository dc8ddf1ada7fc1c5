"""Zero-shot classification by labels a person types, as in CLIP's paper.

Each label is prompt-ensembled with the model's vocabulary templates; the probabilities are a softmax
over the labels of the model's logit scale times cosine similarity. They sum to 1 over the labels
given: "which of these fits best", not "is this a cat" (that is what tag suggestions answer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from indexer.errors import BadInput
from indexer.tags.prompts import embed_labels
from indexer.tags.vocabulary import load_vocabulary, normalize_tag

MAX_LABELS = 1000


def parse_labels(text: str | Sequence[str]) -> list[str]:
    """'cat, dog,,human' or a list -> ["cat", "dog", "human"], duplicates dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    labels: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadInput(f"a label must be text, got {item!r}")
        if item.strip():
            label = normalize_tag(item)
            if label not in labels:
                labels.append(label)
    if len(labels) < 2:
        raise BadInput('give at least two labels to choose between, e.g. --labels "cat,dog"')
    if len(labels) > MAX_LABELS:
        raise BadInput(f"at most {MAX_LABELS} labels, got {len(labels)}")
    return labels


def classify(
    encoder, image: Image.Image | np.ndarray, labels: Sequence[str], templates: Sequence[str] | None = None
) -> list[tuple[str, float]]:
    """[(label, probability)] best first. `image` is a picture or an already-computed unit vector.

    `templates` default to the built-in vocabulary's for this model (the toy model has its own).
    """
    labels = parse_labels(labels)
    if templates is None:
        templates = load_vocabulary(None, encoder.identity.name).templates
    if isinstance(image, np.ndarray):
        vector = np.asarray(image, dtype=np.float32).reshape(-1)
    else:
        vector = encoder.encode_images([image])[0]
    text = embed_labels(encoder, labels, templates)
    logits = float(encoder.logit_scale) * (text @ vector)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    return [(labels[i], float(probs[i])) for i in order]
