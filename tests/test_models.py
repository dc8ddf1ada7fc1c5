"""Model identity: one library, one embedding space; other models are refused clearly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.encoder import TOY_CHECKPOINT, ModelSpec, ModelUnavailable, load_encoder
from indexer.errors import ModelMismatch
from indexer.query import parse_query
from indexer.reembed import reembed
from tests.conftest import LIBRARY_SIZE, index_library, library_for, make_settings

REPO = Path(__file__).parent.parent


def photoseek(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "")}
    return subprocess.run(
        [sys.executable, "-m", "searchd.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def test_spec_parsing():
    assert ModelSpec.parse("ViT-B-32:openai") == ModelSpec("ViT-B-32", "openai")
    assert ModelSpec.parse("toy").weights == str(TOY_CHECKPOINT)
    assert ModelSpec.parse("ViT-B-32:/tmp/w.pt").is_file
    with pytest.raises(ValueError, match="NAME:PRETRAINED"):
        ModelSpec.parse("ViT-B-32")


def test_toy_identity_names_its_weights(toy_encoder):
    ident = toy_encoder.identity
    assert (ident.name, ident.pretrained, ident.dim) == ("photoseek-toy", "toyworld", 128)
    assert len(ident.file_hash) == 64


def test_searching_with_another_model_is_refused(indexed, tmp_path):
    settings, catalog = indexed
    other = tmp_path / "toy-copy.pt"
    shutil.copy(TOY_CHECKPOINT, other)
    other.write_bytes(other.read_bytes() + b"\0")  # same architecture, different weights file
    enc = load_encoder(f"photoseek-toy:{other}", "cpu")
    searcher = library_for(settings.replace(model=f"photoseek-toy:{other}"), enc, catalog).searcher()
    with pytest.raises(ModelMismatch, match="reembed"):
        searcher.search(parse_query("a red circle"))


def test_cli_refuses_other_model_and_names_the_fix(indexed):
    settings, _ = indexed
    proc = photoseek(
        "--data-dir", str(settings.data_dir), "--model", "ViT-S-32:random", "search", "a red circle"
    )
    assert proc.returncode == 2
    assert "photoseek-toy:toyworld" in proc.stderr and "reembed --model ViT-S-32:random" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_uses_the_library_model_when_none_is_given(indexed):
    settings, _ = indexed
    proc = photoseek("--data-dir", str(settings.data_dir), "search", "a red circle", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 3


def test_missing_weights_fail_fast_with_instructions(indexed):
    settings, _ = indexed
    started = time.monotonic()
    proc = photoseek(
        "--data-dir",
        str(settings.data_dir),
        "--model",
        "ViT-B-32-256:datacomp_s34b_b86k",
        "search",
        "x",
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    assert "ViT-B-32-256:datacomp_s34b_b86k" in proc.stderr and "fetch-model" in proc.stderr
    print(f"offline failure took {elapsed:.1f}s")  # the 10 s bound is a benchmark figure


def test_unknown_pretrained_tag_lists_known_ones():
    with pytest.raises(ModelUnavailable, match="known tags"):
        load_encoder("ViT-B-32:no-such-weights", "cpu")


def test_reembed_switches_the_library(tmp_path, fresh_library, toy_encoder):
    data = tmp_path / "data"
    first, _ = index_library(data, [fresh_library], toy_encoder)
    catalog = first.catalog
    other = tmp_path / "toy-v2.pt"
    shutil.copy(TOY_CHECKPOINT, other)
    other.write_bytes(other.read_bytes() + b"\0")
    spec = f"photoseek-toy:{other}"
    enc2 = load_encoder(spec, "cpu")
    switched = library_for(make_settings(data, model=spec), enc2, catalog)
    done, failed = reembed(switched)
    assert (done, failed) == (LIBRARY_SIZE, 0)
    assert catalog.active_model() == enc2.identity
    with pytest.raises(ModelMismatch):
        library_for(make_settings(data, model="toy"), toy_encoder, catalog).writer()
    hits = switched.searcher().search(parse_query("a red circle"), 5)
    assert len(hits) == 5
