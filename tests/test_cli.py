"""The real `photoseek` CLI in subprocesses: demo library, index, search, the summary and --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import read_manifest
from tests.test_models import photoseek


def test_demo_library_index_and_search(tmp_path):
    lib, data = tmp_path / "lib", tmp_path / "data"
    proc = photoseek("demo-library", str(lib), "--n", "96", "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    assert len(read_manifest(lib)) == 96

    proc = photoseek("--data-dir", str(data), "--model", "toy", "index", str(lib), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "96 new, 0 changed, 0 unchanged, 0 moved, 0 removed, 0 failed (96 embedded)"
    )

    proc = photoseek("--data-dir", str(data), "search", "a yellow square", "-n", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    truth = read_manifest(lib)
    assert len(hits) == 3
    assert all(truth[h["path"]]["colour"] == "yellow" for h in hits)
    assert {"id", "score", "path", "taken_at", "camera"} <= set(hits[0])

    proc = photoseek("--data-dir", str(data), "index", str(lib))  # the library's model, remembered
    assert proc.returncode == 0 and "96 unchanged" in proc.stdout and "(0 embedded)" in proc.stdout


def test_bad_query_says_what_is_wrong(indexed):
    settings, _ = indexed
    proc = photoseek("--data-dir", str(settings.data_dir), "search", "red:-1 | blue:-1")
    assert proc.returncode == 2 and "positive weight" in proc.stderr
    proc = photoseek("--data-dir", str(settings.data_dir), "search", "--like", "999999")
    assert proc.returncode == 2 and "#999999 is not in the index" in proc.stderr


def test_index_without_roots_explains(tmp_path):
    proc = photoseek("--data-dir", str(tmp_path), "--model", "toy", "index")
    assert proc.returncode == 2 and "photoseek index ~/Pictures" in proc.stderr


def test_second_writer_is_refused(tmp_path):
    from indexer.layout import DataDir
    from indexer.lock import WriterLock

    with WriterLock(DataDir(tmp_path).writer_lock):
        proc = photoseek("--data-dir", str(tmp_path), "--model", "toy", "index", str(Path(__file__).parent))
    assert proc.returncode == 2 and "another photoseek indexer" in proc.stderr
