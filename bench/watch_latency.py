"""From a new file landing in a watched folder to it appearing in searchd's answers.

`photoseek watch` runs as its own process (as in production) and searchd's app runs in this one over
loopback; each file is written elsewhere and renamed into the root, as a camera import or rsync does.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from bench.corpus import CACHE, photo
from bench.query import cli_base, http_get, serve_in_thread
from bench.report import Report
from indexer.catalog import open_catalog
from indexer.catalog.schema import Root
from indexer.encoder import Encoder
from indexer.settings import Settings

TIMEOUT_S = 300.0


def _wait_watching(data_dir: Path, proc: subprocess.Popen) -> None:
    """Until the watcher follows the root and has finished its first reconcile (and with it the
    one-off start-up work: model load, tag vocabulary embeddings), both recorded in the catalog."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"watch exited: {proc.stderr.read().decode()[-1500:]}")
        if (data_dir / "catalog.sqlite").exists():
            catalog = open_catalog(data_dir)
            try:
                with catalog.session() as s:
                    if any(r.observer and r.last_scan_at for r in s.scalars(select(Root))):
                        return
            finally:
                catalog.close()
        time.sleep(0.2)
    raise TimeoutError("photoseek watch did not start watching")


def bench_watch_latency(report: Report, encoder: Encoder, device: str, files: int, settle_s: float) -> None:
    work = Path(tempfile.mkdtemp(dir=CACHE))
    root, data_dir, staging = work / "photos", work / "data", work / "staging"
    for d in (root, staging):
        d.mkdir()
    photo(640, 480, seed=10_000).save(root / "seed.jpg", quality=90)  # the library is not empty
    cmd = [*cli_base(data_dir), "--model", str(encoder.spec), "--device", device]
    cmd += ["watch", str(root), "--settle", str(settle_s), "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = None
    what = f"new file in a watched folder to searchd's answers (settle_s={settle_s:g})"
    try:
        try:
            _wait_watching(data_dir, proc)
        except TimeoutError as exc:  # a figure left pending must not sink the rest of the suite
            report.add("watch", what, None, "s", f"not measured: {exc} within {TIMEOUT_S:g} s")
            return
        settings = Settings(data_dir=data_dir, model=str(encoder.spec), device=device)
        port, stop = serve_in_thread(settings, encoder)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies = []
        for i in range(files):
            name = f"new_{i}.jpg"
            photo(640, 480, seed=20_000 + i).save(staging / name, quality=90)
            t0 = time.perf_counter()
            os.rename(staging / name, root / name)
            while True:
                paths = {r["path"] for r in http_get(conn, "anything")["results"]}
                if str((root / name).resolve()) in paths:
                    break
                if time.perf_counter() - t0 > TIMEOUT_S:
                    raise TimeoutError(f"{name} never appeared in searchd's answers")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - t0)
        latencies.sort()
        report.add(
            "watch",
            what,
            latencies[len(latencies) // 2],
            "s",
            f"median of {files}; max {latencies[-1]:.2f} s",
        )
    finally:
        if stop is not None:
            stop()
        proc.terminate()  # SIGTERM: the watcher finishes its batch, saves and exits
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
