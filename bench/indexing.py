"""Indexing throughput: the model alone, decoding alone, and the real pipeline end to end.

Each end-to-end figure is taken right after its model-only reference, with the same encoder object,
so that the ratio between them cancels most of the machine's noise (the dev machine is shared).
End to end means files on disk to committed catalog rows: the library's writer (`photoseek index`'s,
with its tag-suggestion hook) on a fresh data dir, including scanning, hashing, the decoding
processes' start-up and the final vector index save.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from sqlalchemy import func, select

from bench.corpus import CACHE
from indexer.catalog.schema import OK, Image
from indexer.encoder import Encoder
from indexer.library import Library
from indexer.scan import FileEntry
from indexer.settings import Settings
from indexer.writer import Writer
from indexer.writer.read import read_many

RUNS = CACHE / "runs"


def model_only_rate(encoder: Encoder, count: int, batch_size: int) -> float:
    """Images/s of encode_pixels on ready uint8 inputs (no decoding, no catalog)."""
    s = encoder.image_size
    pixels = np.random.default_rng(0).integers(0, 256, (batch_size, s, s, 3), dtype=np.uint8)
    encoder.encode_pixels(pixels[: min(8, batch_size)])  # warm-up: allocator, kernels, caches
    _sync(encoder)
    done, started = 0, time.perf_counter()
    while done < count:
        encoder.encode_pixels(pixels)
        done += batch_size
    _sync(encoder)
    return done / (time.perf_counter() - started)


def decode_only_rate(folder: Path, image_size: int, workers: int, gpu_jpeg: bool = False) -> float:
    """Images/s of read_photo (read, hash, draft decode, fit_square) through the pipeline's pool; with
    gpu_jpeg, what the workers do when the GPU decodes: read, hash, parse the header, ship the bytes."""
    entries = [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime) for p in sorted(folder.glob("*.jpg"))]
    settings = Settings(workers=workers)
    started = time.perf_counter()
    n = sum(1 for r in read_many(entries, len(entries), settings, image_size, gpu_jpeg) if r.error is None)
    return n / (time.perf_counter() - started)


class Stopwatch:
    """Seconds spent in a writer's stages: embedding (incl. GPU decoding where JPEGs are decoded there),
    each batch's commit (its own thread) and, within the commits, the hooks (tag suggestions)."""

    def __init__(self, writer: Writer) -> None:
        self.embed_s = self.write_s = self.hooks_s = 0.0
        writer.embedder.embed = self._timed(writer.embedder.embed, "embed_s")  # type: ignore[method-assign]
        writer._commit = self._timed(writer._commit, "write_s")  # type: ignore[method-assign]
        writer.hooks = [self._timed(h, "hooks_s") for h in writer.hooks]

    def _timed(self, fn, field: str):
        def timed(*args, **kw):
            started = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                setattr(self, field, getattr(self, field) + time.perf_counter() - started)

        timed.prepare = getattr(fn, "prepare", None)  # type: ignore[attr-defined]  # a hook's
        return timed


@dataclass
class EndToEnd:
    rate: float  # committed rows per second, wall clock of index_roots
    rows: int
    seconds: float
    embed_s: float  # time in the model (incl. GPU decoding and the embeddings-present check)
    catalog_s: float  # time committing (in the commit thread, overlapping the model)
    hooks_s: float = 0.0  # of which in the hooks (tag suggestions)


def end_to_end(settings: Settings, folder: Path, encoder: Encoder) -> EndToEnd:
    """One indexing pass of `folder` into a fresh data dir, through the real Writer.index_roots."""
    RUNS.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(dir=RUNS))
    try:
        library = Library.open(settings.replace(data_dir=data_dir))
        library.models.put(library.clip_key, encoder)
        writer = library.writer()
        watch = Stopwatch(writer)
        # The model checked and the tag vocabulary's embeddings in hand (once per model and machine,
        # from the machine cache after that) before the clock starts: steady-state indexing is measured.
        writer.model_id()
        started = time.perf_counter()
        summary = writer.index_roots([folder])
        elapsed = time.perf_counter() - started
        with library.catalog.session() as s:
            committed = s.scalar(select(func.count()).select_from(Image).where(Image.status == OK)) or 0
        library.catalog.close()
        if summary.failed:
            print(f"  warning: {summary.text()}", file=sys.stderr)
        return EndToEnd(committed / elapsed, committed, elapsed, watch.embed_s, watch.write_s, watch.hooks_s)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def cli_index_peak_rss(
    folder: Path, model: str, device: str, workers: int | None = None
) -> tuple[float, float]:
    """(peak RSS in MB of `photoseek index` and its decoding processes, seconds) on a fresh data dir.

    RSS is summed over the process tree every 50 ms: pages shared between processes count once per
    process, so this over-states a little, never under-states.
    """
    RUNS.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(dir=RUNS))
    cmd = [sys.executable, "-m", "searchd.cli", "--data-dir", str(data_dir), "--model", model]
    cmd += ["--device", device, "-q", "index", str(folder), "--no-progress"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    peak = 0.0
    started = time.perf_counter()
    try:
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
        return peak / 2**20, elapsed
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def model_loaded_rss(model: str, device: str) -> tuple[float, float]:
    """(RSS, anonymous RSS) in MB of a fresh process that imported photoseek and loaded the model:
    the floor under the indexer's peak, before a single photo."""
    code = (
        "import psutil, indexer.writer as w, indexer.encoder as e; "
        f"e.load_encoder({model!r}, {device!r}); "
        "a = [l for l in open('/proc/self/status') if l.startswith('RssAnon')][0].split()[1]; "
        "print(psutil.Process().memory_info().rss / 2**20, int(a) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rss, anon = out.split()[-2:]
    return float(rss), float(anon)


def _rss(p: psutil.Process) -> int:
    try:
        return p.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _sync(encoder: Encoder) -> None:
    if encoder.device == "cuda":
        import torch

        torch.cuda.synchronize()


def draft_speedup(folder: Path, image_size: int, limit: int) -> tuple[float, float]:
    """(images/s with JPEG draft decoding, without) for decode + fit_square, one process."""
    from indexer.decode import decode_bytes
    from indexer.preprocess import fit_square

    files = sorted(folder.glob("*.jpg"))[:limit]
    data = [(p.name, p.read_bytes()) for p in files]
    rates = []
    for draft in (image_size, None):
        started = time.perf_counter()
        for name, b in data:
            fit_square(decode_bytes(b, name, draft=draft).image, image_size)
        rates.append(len(data) / (time.perf_counter() - started))
    return rates[0], rates[1]
