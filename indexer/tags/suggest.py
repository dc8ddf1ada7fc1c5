"""Tag suggestions: image vectors x concept embeddings, calibrated, thresholded, stored with scores.

Made at index time for each batch of new or changed images (one small matrix product inside the
batch's transaction, see `index_time_hook`), and for the whole library when what they depend on
changes: the vocabulary, the threshold, the calibration method or the model. A fingerprint of those
is kept in the catalog's settings table; when it differs, every suggestion is recomputed
(`photoseek tags recompute` does the same on demand).

A suggestion never overrides a person: images whose tag is accepted or rejected keep that state, and
a rejected tag is never suggested for that image again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from indexer.catalog.schema import OK, Embedding, Image, ImageTag, Model, Setting, Tag
from indexer.catalog.store import Catalog, ModelIdentity, utcnow
from indexer.settings import Settings
from indexer.tags import calibrate
from indexer.tags.prompts import ConceptEmbeddings, PromptCache
from indexer.tags.vocabulary import Vocabulary, load_vocabulary

log = logging.getLogger(__name__)

SUGGESTED, ACCEPTED, REJECTED = "suggested", "accepted", "rejected"
VOCABULARY = "vocabulary"  # Tag.source of concepts that came from a vocabulary
CONFIG_SETTING = "tags.suggestions"  # Setting key: the fingerprint the stored suggestions were made with
RECOMPUTE_CHUNK = 2048  # images per transaction when recomputing a library
MAX_PER_IMAGE = 20  # a photo with more suggestions than this gets its best 20 (UI and storage bound)


def identity_of(s: Session, model_id: int) -> ModelIdentity:
    row = s.get(Model, model_id)
    if row is None:
        raise LookupError(f"model #{model_id} is not in the catalog")
    return ModelIdentity(row.name, row.pretrained, row.file_hash, row.dim)


def tag_ids(s: Session, names: Iterable[str], source: str = VOCABULARY) -> dict[str, int]:
    """Ids of tags by name, creating the missing ones with `source`."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(dict(s.execute(select(Tag.name, Tag.id).where(Tag.name.in_(chunk))).all()))
    now = utcnow()
    for name in wanted:
        if name not in found:
            tag = Tag(name=name, source=source, created_at=now)
            s.add(tag)
            s.flush()
            found[name] = tag.id
    return found


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
        self._cache = cache or PromptCache(settings.data_dir / "tags")

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
        decided: set[tuple[int, int]] = set()
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start : start + 500]
            s.execute(delete(ImageTag).where(ImageTag.image_id.in_(chunk), ImageTag.state == SUGGESTED))
            rows = s.execute(select(ImageTag.image_id, ImageTag.tag_id).where(ImageTag.image_id.in_(chunk)))
            decided.update((image_id, tag_id) for image_id, tag_id in rows)
        ids = tag_ids(s, {name for pick in picks for name, _ in pick})
        now = utcnow()
        stored = 0
        for image_id, pick in zip(image_ids, picks, strict=True):
            for name, score in pick:
                if (image_id, ids[name]) in decided:
                    continue  # accepted already, or rejected: never suggested again
                s.add(
                    ImageTag(
                        image_id=image_id,
                        tag_id=ids[name],
                        state=SUGGESTED,
                        score=round(score, 4),
                        model_id=model_id,
                        updated_at=now,
                    )
                )
                stored += 1
        s.flush()
        return stored

    def is_stale(self, s: Session, model_id: int) -> bool:
        row = s.get(Setting, CONFIG_SETTING)
        return row is None or row.value != self.config_key(model_id)

    def mark_current(self, s: Session, model_id: int) -> None:
        row = s.get(Setting, CONFIG_SETTING)
        if row is None:
            s.add(Setting(key=CONFIG_SETTING, value=self.config_key(model_id)))
        else:
            row.value = self.config_key(model_id)

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
            s.execute(delete(ImageTag).where(ImageTag.state == SUGGESTED))
            ids = self._searchable_ids(s, model_id)
        for start in range(0, len(ids), RECOMPUTE_CHUNK):
            chunk = ids[start : start + RECOMPUTE_CHUNK]
            got_ids, vectors = catalog.searchable_vectors(model_id, chunk)
            with catalog.session() as s:
                suggestions += self.write(s, got_ids.tolist(), vectors, model_id)
            images += len(got_ids)
        with catalog.session() as s:
            self._drop_unused_tags(s)
            self.mark_current(s, model_id)
        log.info("tag suggestions recomputed: %d images, %d suggestions", images, suggestions)
        return images, suggestions

    def _recompute_in(self, s: Session, model_id: int) -> tuple[int, int]:
        s.execute(delete(ImageTag).where(ImageTag.state == SUGGESTED))
        ids = self._searchable_ids(s, model_id)
        images = suggestions = 0
        for start in range(0, len(ids), RECOMPUTE_CHUNK):
            chunk = ids[start : start + RECOMPUTE_CHUNK]
            rows = s.execute(
                select(Image.id, Embedding.vector)
                .join(Embedding, Embedding.content_hash == Image.content_hash)
                .where(Embedding.model_id == model_id, Image.id.in_(chunk))
            ).all()
            if rows:
                vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                suggestions += self.write(s, [r[0] for r in rows], vectors, model_id)
                images += len(rows)
        self._drop_unused_tags(s)
        self.mark_current(s, model_id)
        log.info("tag suggestions recomputed: %d images, %d suggestions", images, suggestions)
        return images, suggestions

    @staticmethod
    def _searchable_ids(s: Session, model_id: int) -> list[int]:
        return list(
            s.scalars(
                select(Image.id)
                .join(Embedding, Embedding.content_hash == Image.content_hash)
                .where(Embedding.model_id == model_id, Image.status == OK)
                .order_by(Image.id)
            )
        )

    @staticmethod
    def _drop_unused_tags(s: Session) -> None:
        """Vocabulary tags no image carries any more (the concept left the vocabulary) go."""
        used = select(ImageTag.tag_id).distinct()
        s.execute(delete(Tag).where(Tag.source == VOCABULARY, Tag.id.not_in(used)))


def index_time_hook(settings: Settings, catalog: Catalog, encoder: Callable[[], object] | None = None):
    """The Writer's BatchHook: suggest tags for each batch's new images, in the batch's transaction.

    `encoder` (the writer's own) is only needed when the concept embeddings are not cached on disk;
    without it the hook loads settings.model itself. If the stored suggestions are stale (another
    vocabulary, threshold or model), the whole library is recomputed first: at once, or at the first
    batch if that cannot be done yet.
    """
    cache = PromptCache(settings.data_dir / "tags")
    state: dict[int, Suggester] = {}
    loaded: list = []  # our own encoder, loaded at most once when none was given

    def provider():
        if encoder is not None:
            return encoder()
        if not loaded:
            from indexer.encoder import load_encoder

            log.info("tag suggestions: loading %s for the text tower", settings.model)
            loaded.append(load_encoder(settings.model, settings.device))
        return loaded[0]

    def suggester_for(s: Session, model_id: int) -> Suggester:
        if model_id not in state:
            state[model_id] = Suggester(settings, identity_of(s, model_id), provider, cache)
        return state[model_id]

    # Stale suggestions are recomputed now, before any batch: a run with no new photos must still
    # apply a new vocabulary. The model is touched only if the concept embeddings are not on disk.
    active = catalog.active_model()
    model_id = catalog.model_id(active, create=False) if active is not None else None
    if model_id is not None:
        with catalog.session() as s:
            suggester = suggester_for(s, model_id)
            stale = suggester.is_stale(s, model_id)
        if stale:
            try:
                suggester.recompute(catalog, model_id)
            except (LookupError, ValueError) as exc:  # e.g. another model: the Writer will say so
                log.info("tag suggestions not recomputed yet (%s); retrying at the first batch", exc)

    def hook(s: Session, pairs: list[tuple[int, np.ndarray]], model_id: int) -> None:
        suggester = suggester_for(s, model_id)
        if suggester.is_stale(s, model_id):
            suggester.recompute(catalog, model_id, session=s)  # includes this batch's images
            return
        if pairs:
            suggester.write(s, [image_id for image_id, _ in pairs], np.stack([v for _, v in pairs]), model_id)

    def prepare(model_id: int) -> None:
        """Have the concept embeddings in hand (from disk, else from the text tower) before indexing,
        so that the indexer can free its text tower for the rest of the run."""
        with catalog.session() as s:
            suggester_for(s, model_id).embeddings  # noqa: B018  # computed and cached on first use

    hook.prepare = prepare  # type: ignore[attr-defined]
    return hook
