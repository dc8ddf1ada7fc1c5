"""Tag suggestions: image vectors x concept embeddings, calibrated, thresholded, stored with scores.

Made at index time for each batch of new or changed images (one small matrix product inside the
batch's transaction, see `TagSuggestions`), and for the whole library when what they depend on
changes: the vocabulary, the threshold, the calibration method or the model. A fingerprint of those
is kept in the catalog's settings table; when it differs, every suggestion is recomputed
(`photoseek tags recompute` does the same on demand).

A suggestion never overrides a person: images whose tag is accepted or rejected keep that state, and
a rejected tag is never suggested for that image again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from indexer.catalog import embeddings
from indexer.catalog import tags as tag_rows
from indexer.catalog.schema import ACCEPTED, REJECTED, SUGGESTED
from indexer.catalog.store import Catalog, ModelIdentity, get_setting, identity_of, put_setting, utcnow
from indexer.layout import machine_cache_dir
from indexer.settings import Settings
from indexer.tags import calibrate
from indexer.tags.prompts import ConceptEmbeddings, PromptCache
from indexer.tags.vocabulary import Vocabulary, load_vocabulary

log = logging.getLogger(__name__)

__all__ = ["ACCEPTED", "REJECTED", "SUGGESTED", "Suggester", "TagSuggestions", "concept_cache_dir"]

CONFIG_SETTING = "tags.suggestions"  # Setting key: the fingerprint the stored suggestions were made with
RECOMPUTE_CHUNK = 2048  # images per transaction when recomputing a library
MAX_PER_IMAGE = 20  # a photo with more suggestions than this gets its best 20 (UI and storage bound)


class Suggester:
    """Suggests a vocabulary's tags for one model's image vectors."""

    def __init__(
        self,
        settings: Settings,
        identity: ModelIdentity,
        encoder: Callable[[], object] | None = None,
        cache: PromptCache | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.vocabulary: Vocabulary = load_vocabulary(settings.vocabulary or None, identity.name)
        self.threshold = float(settings.tag_threshold)
        self._encoder = encoder
        self._cache = cache or PromptCache(concept_cache_dir())

    @property
    def embeddings(self) -> ConceptEmbeddings:
        return self._cache.get(self.identity, self.vocabulary, self._encoder)

    def config_key(self, model_id: int) -> str:
        """What the stored suggestions depend on; a different key means they must be recomputed."""
        return json.dumps(
            {
                "model_id": model_id,
                "vocabulary": self.vocabulary.hash,
                "threshold": self.threshold,
                "method": calibrate.METHOD,
            },
            sort_keys=True,
        )

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """N x T calibrated scores of N unit image vectors against the vocabulary."""
        return calibrate.calibrated(vectors, self.embeddings)

    def ranked(self, vector: np.ndarray, limit: int | None = None) -> list[tuple[str, float]]:
        """(tag, score) of one image, best first, whether above the threshold or not."""
        row = self.scores(np.asarray(vector, dtype=np.float32)[None, :])[0]
        order = np.argsort(-row, kind="stable")[:limit]
        return [(self.embeddings.names[i], float(row[i])) for i in order]

    def above_threshold(self, scores: np.ndarray) -> list[list[tuple[str, float]]]:
        names = self.embeddings.names
        out = []
        for row in scores:
            idx = np.flatnonzero(row >= self.threshold)
            idx = idx[np.argsort(-row[idx], kind="stable")][:MAX_PER_IMAGE]
            out.append([(names[i], float(row[i])) for i in idx])
        return out

    # -- writing ------------------------------------------------------------------------------------
    def write(self, s: Session, image_ids: list[int], vectors: np.ndarray, model_id: int) -> int:
        """Replace the suggestions of these images (decisions stay); return how many were stored."""
        if not image_ids:
            return 0
        picks = self.above_threshold(self.scores(vectors))
        tag_rows.clear_suggestions(s, image_ids)
        decided = tag_rows.tagged_pairs(s, image_ids)  # what is left: a person's decisions
        now = utcnow()
        ids = tag_rows.tag_ids(s, {name for pick in picks for name, _ in pick}, tag_rows.VOCABULARY, now)
        stored = 0
        for image_id, pick in zip(image_ids, picks, strict=True):
            for name, score in pick:
                if (image_id, ids[name]) in decided:
                    continue  # accepted already, or rejected: never suggested again
                tag_rows.add_suggestion(s, image_id, ids[name], round(score, 4), model_id, now)
                stored += 1
        s.flush()
        return stored

    def is_stale(self, s: Session, model_id: int) -> bool:
        return get_setting(s, CONFIG_SETTING) != self.config_key(model_id)

    def mark_current(self, s: Session, model_id: int) -> None:
        put_setting(s, CONFIG_SETTING, self.config_key(model_id))

    def recompute(self, catalog: Catalog, model_id: int, session: Session | None = None) -> tuple[int, int]:
        """Suggest afresh for every searchable image; (images, suggestions). Decisions are kept.

        With `session`, everything happens in that transaction (the indexer's batch); otherwise in
        chunks of RECOMPUTE_CHUNK images, with the fingerprint written last, so an interrupted run is
        simply redone next time.
        """
        images = suggestions = 0
        if session is not None:
            return self._recompute_in(session, model_id)
        with catalog.session() as s:
            tag_rows.clear_suggestions(s)
            ids = embeddings.searchable_ids(s, model_id)
        for start in range(0, len(ids), RECOMPUTE_CHUNK):
            chunk = ids[start : start + RECOMPUTE_CHUNK]
            got_ids, vectors = catalog.searchable_vectors(model_id, chunk)
            with catalog.session() as s:
                suggestions += self.write(s, got_ids.tolist(), vectors, model_id)
            images += len(got_ids)
        with catalog.session() as s:
            tag_rows.drop_unused_vocabulary_tags(s)
            self.mark_current(s, model_id)
        log.info("tag suggestions recomputed: %d images, %d suggestions", images, suggestions)
        return images, suggestions

    def _recompute_in(self, s: Session, model_id: int) -> tuple[int, int]:
        tag_rows.clear_suggestions(s)
        ids = embeddings.searchable_ids(s, model_id)
        images = suggestions = 0
        for start in range(0, len(ids), RECOMPUTE_CHUNK):
            rows = embeddings.searchable_vectors_of(s, model_id, ids[start : start + RECOMPUTE_CHUNK])
            if rows:
                vectors = embeddings.from_blobs([r[1] for r in rows])
                suggestions += self.write(s, [r[0] for r in rows], vectors, model_id)
                images += len(rows)
        tag_rows.drop_unused_vocabulary_tags(s)
        self.mark_current(s, model_id)
        log.info("tag suggestions recomputed: %d images, %d suggestions", images, suggestions)
        return images, suggestions


class TagSuggestions:
    """The writer's BatchHook (indexer/writer/hooks.py): suggest tags for each batch's new images, in the
    batch's transaction.

    `encoder` (the library's) is needed only when the concept embeddings are not cached on this
    machine. If the stored suggestions are stale (another vocabulary, threshold or model), the whole
    library is recomputed first: when the hook is made, or at the first batch if that cannot be done yet.
    """

    def __init__(self, settings: Settings, catalog: Catalog, encoder: Callable[[], object] | None) -> None:
        self.settings = settings
        self.catalog = catalog
        self._encoder = encoder
        self._cache = PromptCache(concept_cache_dir())
        self._suggesters: dict[int, Suggester] = {}
        # Stale suggestions are recomputed now, before any batch: a run with no new photos must still
        # apply a new vocabulary. The model is touched only if the concept embeddings are not on disk.
        active = catalog.active_model()
        model_id = catalog.model_id(active, create=False) if active is not None else None
        if model_id is not None:
            with catalog.session() as s:
                suggester = self._suggester(s, model_id)
                stale = suggester.is_stale(s, model_id)
            if stale:
                try:
                    suggester.recompute(catalog, model_id)
                except (LookupError, ValueError) as exc:  # e.g. another model: the writer will say so
                    log.info("tag suggestions not recomputed yet (%s); retrying at the first batch", exc)

    def _suggester(self, s: Session, model_id: int) -> Suggester:
        if model_id not in self._suggesters:
            self._suggesters[model_id] = Suggester(
                self.settings, identity_of(s, model_id), self._encoder, self._cache
            )
        return self._suggesters[model_id]

    def prepare(self, model_id: int) -> None:
        """Have the concept embeddings in hand (from disk, else from the text tower) before indexing,
        so that the indexer can free its text tower for the rest of the run."""
        with self.catalog.session() as s:
            self._suggester(s, model_id).embeddings  # noqa: B018  # computed and cached on first use

    def __call__(self, s: Session, embedded: list[tuple[int, np.ndarray]], model_id: int) -> None:
        suggester = self._suggester(s, model_id)
        if suggester.is_stale(s, model_id):
            suggester.recompute(self.catalog, model_id, session=s)  # includes this batch's images
            return
        if embedded:
            ids = [image_id for image_id, _ in embedded]
            suggester.write(s, ids, np.stack([v for _, v in embedded]), model_id)


def concept_cache_dir() -> Path:
    """Concept embeddings depend on the model and the vocabulary only: one copy per machine, shared by
    every library (computing them costs a text tower pass per prompt, ~30 s for the default vocabulary)."""
    return machine_cache_dir() / "tag-embeddings"
