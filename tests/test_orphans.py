"""Nothing outlives a killed indexer (issue 18): its decoding workers and multiprocessing's resource
tracker exit within seconds of the indexer's SIGKILL, however busy they were, and the next run starts
cleanly. The real `photoseek index` and `photoseek watch` run in subprocesses with 2 decoding workers
on a library big enough to keep them busy."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexer.catalog import open_catalog
from indexer.toyworld import Spec, render
from tests.watch_support import ok_rows, wait_for

PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")
PHOTOS = 400  # 2 MP JPEGs: several seconds of decoding for 2 workers
CHILDREN_GONE_S = 10.0


@pytest.fixture(scope="module")
def big_library(tmp_path_factory) -> Path:
    """PHOTOS copies of one 2 MP JPEG under distinct names (each is read, hashed and decoded anew)."""
    root = tmp_path_factory.mktemp("busy-photos")
    buf = io.BytesIO()
    small = render(Spec("red", "circle", "grey background"), (320, 240), np.random.default_rng(0))
    small.resize((1600, 1200)).save(buf, format="JPEG", quality=92)
    for i in range(PHOTOS):
        (root / f"photo_{i:04d}.jpg").write_bytes(buf.getvalue())
    return root


def start(data: Path, *command: str) -> psutil.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PHOTOSEEK_TORCH_THREADS": "1", "PHOTOSEEK_BATCH_SIZE": "16"}
    args = [PHOTOSEEK, "--data-dir", str(data), "--model", "toy", *command]
    data.mkdir(parents=True, exist_ok=True)
    with open(data.parent / f"{command[0]}.log", "ab") as log:  # the child keeps its own copy
        return psutil.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)


def output(data: Path, command: str) -> str:
    return (data.parent / f"{command}.log").read_text(errors="replace")[-3000:]


def busy_workers(proc: psutil.Popen) -> list[psutil.Process] | None:
    """The indexer's descendants once its two decoding workers exist (and it is still running)."""
    assert proc.poll() is None, f"it ended early (exit {proc.returncode})"
    try:
        children = proc.children(recursive=True)
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    except psutil.NoSuchProcess:
        return None
    return children if len(workers) >= 2 else None


def kill_mid_run_and_check(proc: psutil.Popen, data: Path) -> None:
    children = wait_for(lambda: busy_workers(proc), 120, "two busy decoding workers")
    assert isinstance(children, list)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    gone, alive = psutil.wait_procs(children, timeout=CHILDREN_GONE_S)
    assert not alive, f"still running {CHILDREN_GONE_S:g} s after the indexer died: {alive}"
    leftovers = [p.name for p in data.rglob("*") if ".tmp" in p.name or p.name.startswith(".plan-")]
    assert not leftovers, leftovers


def test_index_workers_die_with_a_killed_index(tmp_path, big_library):
    data = tmp_path / "data"
    proc = start(data, "index", str(big_library), "--workers", "2", "--no-progress")
    kill_mid_run_and_check(proc, data)
    again = start(data, "index", str(big_library), "--workers", "2", "--no-progress")
    assert again.wait(600) == 0, output(data, "index")
    catalog = open_catalog(data)  # the next run started cleanly and finished the job
    try:
        assert len(ok_rows(catalog)) == PHOTOS
    finally:
        catalog.close()


def test_watch_workers_die_with_a_killed_watch(tmp_path, big_library):
    data = tmp_path / "data"
    root = tmp_path / "photos"
    shutil.copytree(big_library, root)
    proc = start(data, "watch", str(root), "--workers", "2")
    kill_mid_run_and_check(proc, data)


def test_half_written_files_of_a_killed_process_are_removed(tmp_path, toy_encoder):
    from tests.conftest import open_library

    library = open_library(tmp_path / "data", toy_encoder)
    vectors = library.layout.vectors
    vectors.mkdir(parents=True)
    dead = vectors / ".photoseek-toy.faiss.tmp4194000"  # above Linux's default pid_max: nobody's
    mine = vectors / f".photoseek-toy.faiss.tmp{os.getpid()}"  # a writer still at work
    status = library.layout.root / ".watch-status.json.tmp"  # written only by the writer-lock holder
    for path in (dead, mine, status):
        path.write_bytes(b"half")
    with library.writer_lock():
        library.writer()
    assert not dead.exists() and not status.exists() and mine.exists()
    library.close()
