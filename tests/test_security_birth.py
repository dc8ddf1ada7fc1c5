"""A new library survives a kill or a second process at birth (issue 12, point 7).

The first open of a data dir creates the catalog's tables. The process is killed (SIGKILL, injected by
strace) at each of SQLite's writes of that first open in turn; after every kill the next open must
work and find the whole schema. Then several processes open one new data dir at the same moment, and
`photoseek serve` and `photoseek watch` are started together on a new data dir.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.catalog import open_catalog
from indexer.catalog.migrate import head_revision
from indexer.catalog.schema import Base
from tests.watch_support import ok_rows, wait_for

PYTHON = sys.executable
PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")
FIRST_OPEN = (
    "import sys; from pathlib import Path; from indexer.catalog import open_catalog; "
    "open_catalog(Path(sys.argv[1])).close()"
)
TABLES = set(Base.metadata.tables) | {"alembic_version"}
STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(
    STRACE is None, reason="needs strace (`make system-deps` installs it: apt-get install strace)"
)


def first_open(data_dir: Path, *prefix: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, PYTHON, "-c", FIRST_OPEN, str(data_dir)], capture_output=True, text=True, timeout=300
    )


def assert_complete(data_dir: Path) -> None:
    """The catalog opens, has every table at the head revision, and is intact."""
    catalog = open_catalog(data_dir)
    catalog.close()
    db = sqlite3.connect(data_dir / "catalog.sqlite")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables >= TABLES, sorted(TABLES - tables)
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def count_writes(data_dir: Path) -> int:
    log = data_dir.parent / f"{data_dir.name}.strace"
    done = first_open(data_dir, STRACE, "-f", "-q", "-e", "trace=pwrite64", "-o", str(log))
    assert done.returncode == 0, done.stderr[-2000:]
    return sum("pwrite64(" in line for line in log.read_text().splitlines())


@needs_strace
@pytest.mark.slow
def test_a_kill_at_any_write_of_the_first_open_leaves_a_library_that_opens(tmp_path):
    writes = count_writes(tmp_path / "counted")
    assert writes > 3  # the schema's pages, the WAL, its index: SQLite really writes through pwrite64
    for n in range(1, writes + 1):
        data_dir = tmp_path / f"killed-at-{n}"
        kill = ("-e", "trace=pwrite64", "-e", f"inject=pwrite64:signal=SIGKILL:when={n}", "-o", os.devnull)
        killed = first_open(data_dir, STRACE, "-f", "-q", *kill)
        assert killed.returncode != 0, f"write {n} of {writes}: the process was not killed"
        assert_complete(data_dir)  # the next open finishes the birth, or redoes it from nothing


@pytest.mark.slow
def test_processes_opening_a_new_library_at_once_all_succeed(tmp_path):
    for round_no in range(4):
        data_dir = tmp_path / f"new-{round_no}"
        procs = [
            subprocess.Popen([PYTHON, "-c", FIRST_OPEN, str(data_dir)], stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, "\n".join(e[-1500:] for e in errors if e)
        assert_complete(data_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> dict | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return {"status": resp.status, "body": resp.read()}
    except OSError:
        return None
    finally:
        conn.close()


def tails(folder: Path) -> str:
    return "\n".join(f"{n}: {(folder / n).read_text()[-2000:]}" for n in ("serve.log", "watch.log"))


@pytest.mark.slow
def test_serve_and_watch_started_together_on_a_new_data_dir(tmp_path, library):
    photos, data_dir = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    for src in sorted(library.rglob("*.jpg"))[:6]:
        shutil.copy(src, photos / src.name)
    env = {**os.environ, "PHOTOSEEK_SETTLE_S": "0.2", "PHOTOSEEK_WORKERS": "0", "OMP_NUM_THREADS": "1"}
    port = free_port()
    common = [PHOTOSEEK, "--data-dir", str(data_dir), "--model", "toy"]
    logs = [open(tmp_path / name, "wb") for name in ("serve.log", "watch.log")]  # noqa: SIM115
    procs = [
        subprocess.Popen([*common, *cmd], stdout=log, stderr=subprocess.STDOUT, env=env)
        for cmd, log in zip((["serve", "--port", str(port)], ["watch", str(photos)]), logs, strict=True)
    ]
    try:

        def up() -> bool:
            exited = [p.args[5] for p in procs if p.poll() is not None]
            assert not exited, f"{exited} exited:\n{tails(tmp_path)}"
            reply = healthz(port)
            return reply is not None and reply["status"] == 200

        wait_for(up, 300, "serve to answer /healthz while watch starts")
        catalog = open_catalog(data_dir)
        try:
            wait_for(lambda: len(ok_rows(catalog)) == 6, 300, "watch to index the six photos")
        finally:
            catalog.close()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        for log in logs:
            log.close()
    for name in ("serve.log", "watch.log"):
        assert "already exists" not in (tmp_path / name).read_text()
    assert_complete(data_dir)
