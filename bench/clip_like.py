"""Synthetic vectors shaped like CLIP image embeddings, and text-like queries, for index benchmarks.

No real library or pretrained weights are reachable here, so recall is measured on a model of what
CLIP image embeddings look like. What is assumed (and what `describe` prints for a sample):

- A cone: L2-normalised CLIP image embeddings share a large mean component ("modality mean"; Liang
  et al. 2022, Levi & Gilboa 2025): two unrelated photos have cosine ~0.45, not ~0.
- An anisotropic spectrum: around that mean the variance decays as a power law over the 512 axes
  (a few dozen directions carry most of it), not the isotropic noise of a random Gaussian.
- A hierarchy, as in a photo library: topics of Zipf-distributed popularity (people, pets, beaches),
  events within a topic (one afternoon, one trip: ~40 photos), photos within an event (bursts and
  re-takes). Same topic ~0.70, same event ~0.88 (nearest neighbours), unrelated ~0.45.
- Text queries live elsewhere (the modality gap): a text vector has cosine ~0.15-0.2 with most
  photos and ~0.3-0.35 with its best matches, and describes one or two topics loosely ("a dog on a
  beach"), so its top ten are spread over several events.

bench.catalogs.clustered_unit_vectors (isotropic clusters of 50 around random centres, queries between
two stored vectors) is kept as the pessimistic set: no hierarchy, no spectrum, 20,000 unrelated
clusters per million. Figures are given for both.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 50_000
TOPICS = 2_000
PHOTOS_PER_EVENT = 40
CONE = 0.45  # squared norm of the shared mean component: unrelated photos' cosine
TOPIC, EVENT, PHOTO = 0.25, 0.18, 0.12  # variance shares of the hierarchy (with CONE they sum to 1)
SPECTRUM_POWER = 1.0  # variance of the k-th axis ~ k^-power


class ClipLike:
    """A fixed seeded 'world' (axes, topics, events) from which any number of vectors are drawn."""

    def __init__(self, n: int, dim: int = 512, seed: int = 0) -> None:
        self.n, self.dim = n, dim
        rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.mean = basis[:, 0].astype(np.float32)  # the cone's axis
        self.text_axis = basis[:, -1].astype(np.float32)  # where text vectors sit, off the photos
        scale = np.arange(1, dim - 1, dtype=np.float64) ** -SPECTRUM_POWER
        scale /= scale.sum()  # variances summing to 1 over the structured axes
        self._axes = (basis[:, 1:-1] * np.sqrt(scale)).T.astype(np.float32)  # (dim-2, dim)
        popularity = 1.0 / np.arange(1, TOPICS + 1) ** 1.1
        self.topic_p = popularity / popularity.sum()
        self.topics = self._draw(rng, TOPICS, TOPIC)
        events = max(1, n // PHOTOS_PER_EVENT)
        self.event_topic = rng.choice(TOPICS, events, p=self.topic_p)
        self.events = self.topics[self.event_topic] + self._draw(rng, events, EVENT)
        self.seed = seed

    def _draw(self, rng: np.random.Generator, m: int, share: float) -> np.ndarray:
        """m vectors of the structured space with total variance `share` (anisotropic)."""
        z = rng.standard_normal((m, self._axes.shape[0]), dtype=np.float32)
        return (z @ self._axes) * np.float32(np.sqrt(share))

    def chunks(self, chunk: int = CHUNK) -> Iterator[np.ndarray]:
        """The n photo vectors, unit norm, in order, chunk by chunk (bounded memory at any n)."""
        for start in range(0, self.n, chunk):
            m = min(chunk, self.n - start)
            rng = np.random.default_rng((self.seed, start))
            event = rng.integers(0, len(self.events), m)
            x = self.events[event] + self._draw(rng, m, PHOTO) + self.mean * np.float32(np.sqrt(CONE))
            yield x / np.linalg.norm(x, axis=1, keepdims=True)

    def vectors(self) -> np.ndarray:
        return np.concatenate(list(self.chunks()))

    def text_queries(self, m: int, seed: int = 7) -> np.ndarray:
        """Text-like queries: one or two topics (sometimes an event), loosely, from the text side."""
        rng = np.random.default_rng(seed)
        out = np.empty((m, self.dim), dtype=np.float32)
        for i in range(m):
            picks = rng.choice(TOPICS, int(rng.integers(1, 3)), p=self.topic_p)
            s = self.topics[picks].sum(axis=0)
            if rng.random() < 0.3:  # a specific scene: "the red car at grandma's"
                s = s + self.events[int(rng.integers(0, len(self.events)))]
            s = s + self._draw(rng, 1, 0.2)[0]
            s = s / np.linalg.norm(s) * 0.35
            q = s + self.mean * np.float32(0.27) + self.text_axis * np.float32(0.9)
            out[i] = q / np.linalg.norm(q)
        return out


def describe(vectors: np.ndarray, queries: np.ndarray, sample: int = 2000) -> dict:
    """Cosine statistics of a set, to compare with what is known of CLIP embeddings."""
    rng = np.random.default_rng(0)
    s = vectors[rng.choice(len(vectors), min(sample, len(vectors)), replace=False)]
    pair = (s[: len(s) // 2] * s[len(s) // 2 :]).sum(axis=1)
    top = []
    for q in queries[:20]:
        scores = vectors @ q
        top.append(float(np.sort(scores)[-10:].mean()))
    nn = vectors[: min(len(vectors), 200_000)] @ s[:50].T
    nn.sort(axis=0)
    return {
        "unrelated pair cosine (mean)": float(pair.mean()),
        "unrelated pair cosine (sd)": float(pair.std()),
        "nearest-neighbour cosine (median)": float(np.median(nn[-2])),
        "text query to a random photo (mean)": float((s @ queries[:20].T).mean()),
        "text query to its top ten (mean)": float(np.mean(top)),
    }
