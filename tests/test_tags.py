"""Tag suggestions end to end: vocabulary files, the prompt cache, the Writer's hook, decisions that
persist, filtering by tag, and recomputation when the vocabulary changes. Toy CLIP, real SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer.catalog import open_catalog
from indexer.catalog.schema import ImageTag, Setting, Tag
from indexer.tags import store
from indexer.tags.prompts import PromptCache
from indexer.tags.suggest import CONFIG_SETTING, Suggester, TagSuggestions
from indexer.tags.vocabulary import (
    DEFAULT_FILE,
    TOYWORLD_FILE,
    VocabularyError,
    load_vocabulary,
    parse_vocabulary,
)
from indexer.toyworld import BACKGROUNDS, COLOURS, Spec, build_library, render
from tests.conftest import index_library, library_for, read_manifest

SMALL_LIBRARY = 48


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    build_library(root, SMALL_LIBRARY, seed=31)
    return root


def index_with_tags(data_dir: Path, root: Path, encoder, **overrides):
    """One `photoseek index` pass: the library's writer carries the tag hook; (settings, catalog)."""
    indexed, _ = index_library(data_dir, [root], encoder, **overrides)
    return indexed.settings, indexed.catalog


def ids_by_path(catalog) -> dict[str, int]:
    from indexer.catalog.schema import Image

    with catalog.session() as s:
        return dict(s.execute(select(Image.path, Image.id)).all())


def states(catalog, image_id: int) -> dict[str, str]:
    return {t.name: t.state for t in store.tags_of(catalog, image_id)}


# -- vocabulary files ---------------------------------------------------------------------------------
def test_vocabulary_format():
    parsed = parse_vocabulary(
        "# comment\n\nDog   # our pet\nscreenshot | a screenshot.; a phone screen\n"
        "@template a {} here\n-cat\n"
    )
    assert list(parsed.concepts) == ["dog", "screenshot"]
    assert parsed.concepts["screenshot"].prompts == ("a screenshot.", "a phone screen")
    assert parsed.concepts["dog"].texts(("a {} here",)) == ["a dog here"]
    assert parsed.templates == ["a {} here"] and parsed.removed == {"cat"}
    with pytest.raises(VocabularyError, match="my.txt, line 2: a template needs exactly one"):
        parse_vocabulary("dog\n@template no placeholder\n", "my.txt")
    with pytest.raises(VocabularyError, match="line 1: unknown directive"):
        parse_vocabulary("@frobnicate\n")


def test_builtin_vocabularies_by_model(tmp_path):
    default = load_vocabulary(None, "ViT-B-32-256")
    assert default.sources == (str(DEFAULT_FILE),)
    assert len(default.concepts) >= 300 and {"beach", "dog", "screenshot", "sunset", "receipt"} <= set(
        default.names
    )
    toy = load_vocabulary(None, "photoseek-toy")
    assert toy.sources == (str(TOYWORLD_FILE),) and len(toy.concepts) == 8 + 4 + 32 + 4

    mine = tmp_path / "mine.txt"
    mine.write_text("grandma's house\n-red circle\n")
    extended = load_vocabulary(mine, "photoseek-toy")
    assert "grandma's house" in extended.names and "red circle" not in extended.names
    assert len(extended.concepts) == len(toy.concepts) and extended.templates == toy.templates
    assert extended.hash != toy.hash
    mine.write_text("@replace\ncat\ndog\n")
    assert load_vocabulary(mine, "photoseek-toy").names == ["cat", "dog"]
    with pytest.raises(VocabularyError, match="cannot read vocabulary .*missing.txt"):
        load_vocabulary(tmp_path / "missing.txt", "photoseek-toy")


def test_prompt_cache_survives_on_disk(tmp_path, toy_encoder):
    vocabulary = load_vocabulary(None, toy_encoder.identity.name)
    first = PromptCache(tmp_path).get(toy_encoder.identity, vocabulary, lambda: toy_encoder)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    assert np.allclose(np.linalg.norm(first.matrix, axis=1), 1.0, atol=1e-5)
    again = PromptCache(tmp_path).get(toy_encoder.identity, vocabulary, encoder=None)  # no text tower
    assert again.names == first.names and np.array_equal(again.matrix, first.matrix)
    assert again.logit_scale == pytest.approx(toy_encoder.logit_scale)


# -- suggestions at index time ----------------------------------------------------------------------
def test_new_images_get_suggestions_when_indexed(tmp_path, photos, toy_encoder):
    settings, catalog = index_with_tags(tmp_path / "data", photos, toy_encoder)
    truth = read_manifest(photos)
    ids = ids_by_path(catalog)
    # Colours and backgrounds are what any usable toy CLIP knows (the shipped one's shapes are
    # measured by `python -m indexer.tags.evaluate`, see docs/tags.md): check them against the truth.
    single = set(COLOURS) | set(BACKGROUNDS)
    right = wrong = missed = 0
    for path, image_id in ids.items():
        tags = store.tags_of(catalog, image_id)
        assert tags and all(t.state == "suggested" and t.score >= settings.tag_threshold for t in tags)
        suggested = {t.name for t in tags} & single
        want = {truth[path]["colour"], truth[path]["background"]}
        right, wrong, missed = (
            right + len(suggested & want),
            wrong + len(suggested - want),
            missed + len(want - suggested),
        )
    assert right / (right + wrong) >= 0.9 and right / (right + missed) >= 0.9, (right, wrong, missed)

    # A photo added later gets its suggestions in the batch that indexes it.
    new = photos / "Later" / "new.png"
    new.parent.mkdir()
    render(Spec("red", "circle", "grey background"), (256, 256), np.random.default_rng(1)).save(new)
    summary = library_for(settings, toy_encoder, catalog).writer().index_roots([photos])
    assert summary.new == 1
    suggested = {t.name for t in store.tags_of(catalog, ids_by_path(catalog)[str(new.resolve())])}
    assert {"red circle", "grey background"} <= suggested


def test_decisions_persist_and_rejections_never_come_back(tmp_path, photos, toy_encoder):
    data = tmp_path / "data"
    settings, catalog = index_with_tags(data, photos, toy_encoder)
    image_id = min(ids_by_path(catalog).values())
    suggested = [t.name for t in store.tags_of(catalog, image_id)]
    assert len(suggested) >= 2
    store.accept(catalog, image_id, suggested[0])
    store.reject(catalog, image_id, suggested[1].upper())  # names are case-insensitive
    store.add(catalog, image_id, "  Holiday   2019 ")
    catalog.close()

    catalog = open_catalog(data)
    now = states(catalog, image_id)
    assert now[suggested[0]] == "accepted" and now[suggested[1]] == "rejected"
    assert now["holiday 2019"] == "accepted"
    with catalog.session() as s:
        assert s.scalar(select(Tag.source).where(Tag.name == "holiday 2019")) == "user"

    # Recomputing (a vocabulary change, `tags recompute`) and re-suggesting at index time (the photo
    # was edited) leave decisions alone: the rejected tag is not suggested again.
    suggester = Suggester(settings, toy_encoder.identity, lambda: toy_encoder)
    model_id = catalog.model_id(toy_encoder.identity)
    suggester.recompute(catalog, model_id)
    _, vectors = catalog.searchable_vectors(model_id, [image_id])
    with catalog.session() as s:
        suggester.write(s, [image_id], vectors, model_id)
    assert states(catalog, image_id) == now

    assert store.remove(catalog, image_id, suggested[1]) is True  # forgetting a rejection undoes it
    assert store.remove(catalog, image_id, "never there") is False
    with pytest.raises(store.UnknownImage, match="no image #999999"):
        store.accept(catalog, 999999, "dog")
    with pytest.raises(ValueError, match="cannot be empty"):
        store.add(catalog, image_id, "   ")


def test_search_filtered_by_accepted_tag(tmp_path, photos, toy_encoder):
    from indexer.query import parse_query

    settings, catalog = index_with_tags(tmp_path / "data", photos, toy_encoder)
    ids = sorted(ids_by_path(catalog).values())
    chosen = ids[:5]
    for image_id in chosen:
        store.add(catalog, image_id, "Favourites")
    store.add(catalog, ids[5], "other")
    store.reject(catalog, ids[6], "favourites")  # a rejection does not count as having the tag
    allowed = store.images_with_tags(catalog, ["favourites"])
    assert allowed.tolist() == chosen
    assert store.images_with_tags(catalog, ["favourites", "other"]).tolist() == []

    hits = library_for(settings, toy_encoder, catalog).searcher().search(
        parse_query("a red circle"), 20, 0, allowed
    )
    assert sorted(h.id for h in hits) == chosen

    counts = {row["name"]: row for row in store.tag_counts(catalog)}
    assert counts["favourites"]["accepted"] == 5 and counts["favourites"]["source"] == "user"
    assert sum(row["suggested"] for row in counts.values()) > SMALL_LIBRARY


def test_vocabulary_change_recomputes_suggestions(tmp_path, photos, toy_encoder):
    data = tmp_path / "data"
    settings, catalog = index_with_tags(data, photos, toy_encoder)
    image_id = min(ids_by_path(catalog).values())
    store.accept(catalog, image_id, "kept by hand")
    with catalog.session() as s:
        before = s.get(Setting, CONFIG_SETTING).value

    vocab = tmp_path / "shapes.txt"
    vocab.write_text("@replace\n@template a photo of a {}\n@template a {}\ncircle\nsquare\ntriangle\nstar\n")
    changed = settings.replace(vocabulary=str(vocab))
    # The next indexing run notices the new vocabulary before its first batch and recomputes.
    TagSuggestions(changed, catalog, lambda: toy_encoder)
    with catalog.session() as s:
        assert s.get(Setting, CONFIG_SETTING).value != before
        names = set(
            s.scalars(
                select(Tag.name)
                .join(ImageTag, ImageTag.tag_id == Tag.id)
                .where(ImageTag.state == "suggested")
            )
        )
    assert names and names <= {"circle", "square", "triangle", "star"}
    assert states(catalog, image_id)["kept by hand"] == "accepted"

    # A threshold change, and no encoder: the concept embeddings cached on disk are enough.
    stricter = changed.replace(tag_threshold=0.99)
    hook = TagSuggestions(stricter, catalog, None)
    with catalog.session() as s:
        scores = list(s.scalars(select(ImageTag.score).where(ImageTag.state == "suggested")))
    assert all(score >= 0.99 for score in scores)

    # Stale at a batch (another process changed the catalog meanwhile): recomputed in that batch.
    model_id = catalog.model_id(toy_encoder.identity)
    with catalog.session() as s:
        s.get(Setting, CONFIG_SETTING).value = "{}"
    with catalog.session() as s:
        hook(s, [], model_id)
    with catalog.session() as s:
        current = s.get(Setting, CONFIG_SETTING).value
    assert current == Suggester(stricter, toy_encoder.identity).config_key(model_id)
