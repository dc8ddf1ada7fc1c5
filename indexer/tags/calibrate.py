"""Calibrated tag scores: one threshold that means the same for every tag.

Raw cosine similarities are not comparable across tags: "dog" may sit at 0.30 on dog photos and
"screenshot" at 0.22 on screenshots, and some text embeddings are simply closer to every image.
Two ways to make them comparable are implemented; docs/tags.md has the measurements that chose one.

- NEUTRAL (used): per image, each tag against the ensemble of neutral prompts ("a photo.",
  "an image." ...), as a two-way softmax with the model's own temperature:
      p(tag) = exp(L*s_tag) / (exp(L*s_tag) + exp(L*s_neutral)) = sigmoid(L * (s_tag - s_neutral))
  "Does this tag describe the image better than saying nothing in particular?". Stateless: it needs
  no library statistics, so the first photo of a new library is scored like the millionth, and a tag
  that no photo shows (most of a 460-concept vocabulary) is not forced onto the top of the pile.
- ZSCORE (measured, not used): per tag, (s_tag - mean) / std over the library's own scores. It adapts
  to each tag's baseline, but it assumes the tag is present in some, not most, photos: an absent tag
  still gets its top tail above any threshold, and a tag on most photos gets low z-scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.tags.prompts import ConceptEmbeddings

NEUTRAL = "neutral"
ZSCORE = "zscore"
METHOD = NEUTRAL  # the method suggestions use; identifies stored scores (see suggest.config_key)


def neutral_probabilities(vectors: np.ndarray, emb: ConceptEmbeddings) -> np.ndarray:
    """N x T probabilities that each tag beats the neutral prompt, for N unit image vectors."""
    sims = vectors @ emb.matrix.T
    neutral = vectors @ emb.neutral
    logits = emb.logit_scale * (sims - neutral[:, None])
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))).astype(np.float32)


@dataclass(frozen=True)
class LibraryZScores:
    """Per-tag mean and standard deviation of cosine scores over a library (or a sample of it)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, vectors: np.ndarray, emb: ConceptEmbeddings) -> LibraryZScores:
        sims = vectors @ emb.matrix.T
        return cls(sims.mean(axis=0), np.maximum(sims.std(axis=0), 1e-6))

    def scores(self, vectors: np.ndarray, emb: ConceptEmbeddings) -> np.ndarray:
        return ((vectors @ emb.matrix.T - self.mean) / self.std).astype(np.float32)


def calibrated(vectors: np.ndarray, emb: ConceptEmbeddings) -> np.ndarray:
    """The scores suggestions are made from (METHOD), for N unit image vectors: N x T."""
    if len(vectors) == 0:
        return np.zeros((0, len(emb.names)), dtype=np.float32)
    return neutral_probabilities(np.asarray(vectors, dtype=np.float32), emb)
