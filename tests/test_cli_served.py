"""`photoseek search` asks a running `photoseek serve` of the same data dir (indexer/remote.py), and answers
by itself when there is none: the same hits either way."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.watch_support import wait_for

PHOTOSEEK = [sys.executable, "-m", "searchd.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PHOTOSEEK, *args], capture_output=True, text=True, env=ENV, timeout=300)


def text_queries_answered(url: str) -> float:
    with urllib.request.urlopen(url + "metrics", timeout=30) as reply:
        metrics = reply.read().decode()
    found = re.search(r'^photoseek_queries_total\{kind="text"\} ([0-9.e+]+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def data_dir(tmp_path, indexed) -> Path:
    """A private copy of the session's indexed data dir (serve.json must not land in the shared one)."""
    settings, _ = indexed
    copy = tmp_path / "data"
    shutil.copytree(settings.data_dir, copy, ignore=shutil.ignore_patterns("writer.lock"))
    return copy


def test_search_asks_the_running_server_and_gets_the_same_hits(data_dir):
    query = ["search", "a red circle | grey background:-0.5", "-n", "5", "--json"]
    here = run("--data-dir", str(data_dir), *query)
    assert here.returncode == 0, here.stderr
    server = subprocess.Popen([*PHOTOSEEK, "--data-dir", str(data_dir), "serve", "--port", "0"], env=ENV)
    try:
        info = data_dir / "serve.json"
        wait_for(info.exists, 120, "serve.json")
        url = json.loads(info.read_text())["url"]
        wait_for(lambda: text_queries_answered(url) == 0.0, 60, "the server to answer /metrics")
        served = run("--data-dir", str(data_dir), *query)
        assert served.returncode == 0, served.stderr
        assert text_queries_answered(url) == 1.0  # the CLI's query went to the server ...
        assert json.loads(served.stdout) == json.loads(here.stdout)  # ... and got the same answer
        bad = run("--data-dir", str(data_dir), "search", "red:1000")
        assert bad.returncode == 2 and "out of range" in bad.stderr  # the server refused it, with a sentence
    finally:
        server.terminate()
        server.wait(60)


def test_a_stale_serve_file_is_ignored(data_dir):
    (data_dir / "serve.json").write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9/"}))
    proc = run("--data-dir", str(data_dir), "search", "a red circle", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 3
