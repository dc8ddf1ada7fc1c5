"""Shared fixtures: real components everywhere (toy CLIP, SQLite files, FAISS, files in tmp dirs).

Expensive things are session-scoped and read-only: the toy encoder, a generated library and an index
of it. A test that changes files or the catalog builds its own from these (see `fresh_library`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Two cores: keep torch from oversubscribing them when tests and decoders run side by side.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# The machine-wide cache (tag embeddings, exported models) of this test session, not the user's;
# subprocesses (the CLI tests) inherit it.
os.environ.setdefault("PHOTOSEEK_CACHE_DIR", tempfile.mkdtemp(prefix="photoseek-test-cache-"))

LIBRARY_SIZE = 320
LIBRARY_SEED = 11


@pytest.fixture(scope="session")
def toy_encoder():
    import torch

    from indexer.encoder import load_encoder

    torch.set_num_threads(2)
    return load_encoder("toy", "cpu")


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Path:
    """A read-only toy-world library: LIBRARY_SIZE images and manifest.jsonl."""
    from indexer.toyworld import build_library

    root = tmp_path_factory.mktemp("library")
    build_library(root, LIBRARY_SIZE, LIBRARY_SEED)
    return root


def read_manifest(root: Path) -> dict[str, dict]:
    """Absolute path -> manifest record."""
    out = {}
    for line in (root / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[str((root / rec["path"]).resolve())] = rec
    return out


def make_settings(data_dir: Path, **overrides):
    from indexer.settings import Settings

    # runtime torch: the tests hand the library the session's toy encoder (library_for); the ONNX
    # runtime has tests of its own (tests/test_onnx*.py) and the CLI tests run the default.
    base = dict(data_dir=data_dir, model="toy", device="cpu", runtime="torch", workers=0, batch_size=32)
    base["torch_threads"] = 2
    base.update(overrides)
    return Settings(**base)


def library_for(settings, encoder=None, catalog=None):
    """The Library of these settings, as every entry point builds it (indexer/library.py), with an
    already loaded encoder in its model cache (the session's toy CLIP: real, just not loaded again).
    `catalog`: an open catalog to share (a server over the session's index, with its own data dir)."""
    from indexer.library import Library

    library = Library.open(settings) if catalog is None else Library(settings, catalog)
    if encoder is not None:
        library.models.put(library.clip_key, encoder)
    return library


def open_library(data_dir: Path, encoder=None, **overrides):
    return library_for(make_settings(data_dir, **overrides), encoder)


def index_library(data_dir: Path, roots: list[Path], encoder, **overrides):
    """Run one indexing pass (as `photoseek index` does) and return (library, summary)."""
    library = open_library(data_dir, encoder, **overrides)
    summary = library.writer().index_roots(roots)
    return library, summary


@pytest.fixture(scope="session")
def indexed_library(tmp_path_factory, library, toy_encoder):
    """The Library of `library` indexed once with the toy CLIP. Do not modify."""
    data_dir = tmp_path_factory.mktemp("indexed-data")
    indexed, summary = index_library(data_dir, [library], toy_encoder)
    assert summary.new == LIBRARY_SIZE, summary.text()
    return indexed


@pytest.fixture(scope="session")
def indexed(indexed_library):
    """(settings, catalog) of the session's indexed library. Do not modify."""
    return indexed_library.settings, indexed_library.catalog


@pytest.fixture
def fresh_library(tmp_path, library) -> Path:
    """A private, writable copy of the session library."""
    dst = tmp_path / "photos"
    shutil.copytree(library, dst)
    return dst
