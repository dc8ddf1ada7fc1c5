"""The API description is exact: schemathesis, driven by /api/openapi.json, finds no mismatch.

schemathesis (a third-party property-based API tester) reads the live server's description and sends
what it describes: valid requests must be answered with a documented success, invalid ones refused
with a documented 4xx, and every answer must have a documented status, media type and shape; it also
tries undeclared methods and requests without the token. All its checks run, over every operation,
generation's included, against a real server over a socket: once with no token configured, once
with a token sent, once with a token required but not sent. The number of examples per operation is
bounded and the seed fixed, so a run is repeatable; rules no JSON Schema can state (a query needs a
positive part, labels must differ, uploads must be images) are in tests/schemathesis_hooks.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.toyworld import build_library
from searchd.backoff import Backoff
from tests.conftest import index_library
from tests.searchd_support import serve_library

ST = str(Path(sys.executable).parent / "st")
REPO = Path(__file__).resolve().parent.parent
TOKEN = "Tk-c0rrect-h0rse-battery-5taple"
EXAMPLES = 20  # per operation and phase; about 1,600-1,800 requests a run
SEED = 1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(ST).exists(), reason="no schemathesis: pip install -e '.[dev]'"),
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("st-photos")
    build_library(root, 12, 3)
    return root


def serve(tmp_path: Path, photos: Path, toy_encoder, token: str):
    library, summary = index_library(tmp_path / "data", [photos], toy_encoder, auth_token=token)
    assert summary.new == 12, summary.text()
    served = serve_library(library)
    # Generation jobs the fuzzer queues stay queued (the queue cap answers 429 once it is full) rather
    # than making VQGAN+CLIP images for minutes: the worker is stopped, the API is what is tested.
    served.app.extensions["photoseek.jobs"].close()
    # The fuzzer is one client that sends wrong tokens on purpose (login, the missing-auth check);
    # the backoff would soon answer its every request with a (documented) 429 and test nothing else.
    # tests/test_security_sessions.py tests the backoff itself.
    served.app.extensions["photoseek.auth"].backoff = Backoff(free_failures=10**9)
    return served, library


def schemathesis(port: int, cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(REPO)}
    cmd = [
        ST, "run", f"http://127.0.0.1:{port}/api/openapi.json", "--checks", "all",
        "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--generation-database", "none", "--no-color", "--request-timeout", "120", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    lines = done.stdout.splitlines()
    summary = "\n".join(line for line in lines if re.search(r"generated|passed|failed", line))
    print(f"schemathesis {' '.join(args) or '(no token)'}:\n{summary}")
    return done, done.stdout


def assert_clean(done: subprocess.CompletedProcess, output: str, at_least: int) -> None:
    assert done.returncode == 0, output[-12000:] + done.stderr[-3000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-3000:]
    generated, passed = int(counts.group(1)), int(counts.group(2))
    assert generated == passed and generated >= at_least, output[-3000:]
    assert "Tested: " in output and "failure" not in output.split("SUMMARY")[-1], output[-3000:]


def test_schemathesis_finds_no_mismatch_without_a_token(tmp_path, photos, toy_encoder):
    served, library = serve(tmp_path, photos, toy_encoder, token="")
    try:
        done, output = schemathesis(int(served.port), tmp_path)
    finally:
        served.close()
        library.close()
    assert_clean(done, output, at_least=1000)


def test_schemathesis_finds_no_mismatch_with_a_token(tmp_path, photos, toy_encoder):
    served, library = serve(tmp_path, photos, toy_encoder, token=TOKEN)
    try:
        done, output = schemathesis(int(served.port), tmp_path, "-H", f"Authorization: Bearer {TOKEN}")
        # The same server asked without the token: every guarded operation answers its documented 401.
        anonymous, anonymous_output = schemathesis(int(served.port), tmp_path, "--phases", "coverage")
    finally:
        served.close()
        library.close()
    assert_clean(done, output, at_least=1000)
    assert_clean(anonymous, anonymous_output, at_least=100)
