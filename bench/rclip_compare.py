"""rclip 3.3.0 beside photoseek, on the same folders, same weights, in one run (issue 11).

    flock /tmp/photoseek-cpu.lock .venv/bin/python -m bench.rclip_compare [--reps 3] [--quick]

rclip lives in its own venv (--rclip-venv, default /work/rclip-venv):
    python3 -m venv /work/rclip-venv && /work/rclip-venv/bin/pip install rclip==3.3.0
It gets an ONNX export of photoseek's benchmark weights (`ViT-B-32-256:random`: seed 0, then
open_clip.create_model) made by indexer/onnx_export.py the way rclip's scripts/convert_model.py makes
its files (TorchScript exporter, opset 18, "input" -> "output"), laid out where rclip looks for its
model (RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/{visual,textual}.onnx + the BPE vocabulary), so
rclip never downloads anything. Parity: cosine between the two tools' vectors of the same photos.

Per repetition, the tools take turns (the first tool alternates) on the 3 MP and 12 MP corpora, each
run on a fresh data dir after the page cache is dropped. Measured from outside: wall time, peak RSS of
the process tree, CPU seconds of the tree; from inside (bench/batch_clock.py): when each image batch
went into and came out of the model. "Start-up excluded" = photos after the first batch / time from
the first batch's end to the last batch's end, for both tools (imports, model load, the scan and the
first batch's decoding are left out). Then cold CLI queries (new process; median of 5, with the page
cache dropped before each and without), `index` of an unchanged and of an empty folder, and photoseek
serve from start to /healthz and to its first answer. rclip has no index-only command: its figures for
the unchanged and empty folders are `rclip QUERY` there (a scan plus one query).

--photoseek-opts "..." / --photoseek-env KEY=VALUE run photoseek with other global options or settings
(another runtime, say); the section's command line records them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from bench import machine
from bench.corpus import CACHE, corpus, describe
from bench.report import Report

MODEL = "ViT-B-32-256:random"
RCLIP_VERSION = "3.3.0"
RCLIP_MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # where rclip 3.3.0 looks for its ONNX files
RCLIP_VOCAB = "tokenizer/bpe_simple_vocab_16e6.txt.gz"
EXPORT_DIR = CACHE / "onnx" / "ViT-B-32-256-random"
WORK = CACHE / "rclip-compare"
QUERY = "a child on a beach at sunset"
REPO = machine.REPO


def drop_page_cache() -> bool:
    """Cold reads, as after a reboot (root only; elsewhere the run says the cache was warm)."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


@dataclass
class Run:
    wall: float
    peak_rss_mb: float  # summed over the process tree: pages shared between processes count in each
    peak_pss_mb: float  # the same with shared pages divided among their sharers: the tree's real footprint
    cpu_s: float  # CPU seconds of the whole process tree
    out: str
    batches: list = field(default_factory=list)  # (start, end, images), wall clock
    started: float = 0.0
    samples: list = field(default_factory=list)  # (wall clock, tree CPU seconds)

    def cpu_between(self, t0: float, t1: float) -> float:
        """Tree CPU seconds spent between two wall-clock moments (from the 0.1 s samples)."""
        ts = np.array([s[0] for s in self.samples])
        cs = np.array([s[1] for s in self.samples])
        return float(np.interp(t1, ts, cs) - np.interp(t0, ts, cs))


def _tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _memory(p: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) in bytes; PSS from /proc/PID/smaps_rollup."""
    try:
        m = p.memory_full_info()
        return m.rss, getattr(m, "pss", m.rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0, 0


def run_measured(cmd: list[str], cwd: Path, env: dict, clock: Path | None = None) -> Run:
    """Run cmd to the end, sampling memory and CPU of its process tree every 0.1 s."""
    started = time.time()
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak_rss, peak_pss, cpu, samples = 0, 0, 0.0, []
    out_chunks: list[bytes] = []
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            mem = [_memory(p) for p in [proc, *proc.children(recursive=True)]]
            peak_rss = max(peak_rss, sum(m[0] for m in mem))
            peak_pss = max(peak_pss, sum(m[1] for m in mem))
            cpu = max(cpu, _tree_cpu(proc))  # a reaped child's time moves to its parent: never lower
            samples.append((time.time(), cpu))
        with contextlib.suppress(BlockingIOError, TypeError):
            chunk = proc.stdout.read()
            if chunk:
                out_chunks.append(chunk)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    os.set_blocking(proc.stdout.fileno(), True)
    out_chunks.append(proc.stdout.read())
    out = b"".join(out_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-3000:]}")
    run = Run(wall, peak_rss / 2**20, peak_pss / 2**20, cpu, out, started=started, samples=samples)
    if clock is not None and clock.exists():
        doc = json.loads(clock.read_text())
        run.batches = doc["batches"]
    return run


# ---------------------------------------------------------------- the two tools


class Photoseek:
    name = "photoseek"

    def __init__(self, python: Path, opts: list[str], env: dict[str, str]):
        self.python = python
        self.opts = opts  # extra global options, e.g. a runtime setting once there is one
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **env}

    def base(self, data_dir: Path) -> list[str]:
        return ["--data-dir", str(data_dir), "--model", MODEL, "--device", "cpu", "-q", *self.opts]

    def index(self, folder: Path, data_dir: Path, clock: Path) -> Run:
        cmd = [str(self.python), "-m", "bench.batch_clock", str(clock), "photoseek", "--"]
        cmd += [*self.base(data_dir), "index", str(folder), "--no-progress"]
        return run_measured(cmd, REPO, self.env, clock)

    def query(self, folder: Path, data_dir: Path) -> Run:
        cmd = [
            str(self.python),
            "-m",
            "searchd.cli",
            "--data-dir",
            str(data_dir),
            "-q",
            *self.opts,
            "search",
            QUERY,
        ]
        return run_measured(cmd, REPO, self.env)

    def vectors(self, data_dir: Path) -> dict[str, np.ndarray]:
        with sqlite3.connect(data_dir / "catalog.sqlite") as con:
            rows = con.execute(
                "SELECT i.path, e.vector FROM images i JOIN embeddings e ON e.content_hash = i.content_hash"
            ).fetchall()
        return {Path(p).name: np.frombuffer(v, np.float32) for p, v in rows}


class Rclip:
    name = "rclip"

    def __init__(self, venv: Path, model_home: Path):
        self.python = venv / "bin" / "python"
        self.model_home = model_home

    def _datadir(self, data_dir: Path) -> dict:
        """A fresh RCLIP_DATADIR whose model files are links to the shared export."""
        for rel in (f"{RCLIP_MODEL_SUBDIR}/visual.onnx", f"{RCLIP_MODEL_SUBDIR}/textual.onnx", RCLIP_VOCAB):
            dst = data_dir / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(self.model_home / rel)
        return {**os.environ, "RCLIP_DATADIR": str(data_dir)}

    def index(self, folder: Path, data_dir: Path, clock: Path) -> Run:
        cmd = [str(self.python), str(REPO / "bench" / "batch_clock.py"), str(clock), "rclip", "--", QUERY]
        return run_measured(cmd, folder, self._datadir(data_dir), clock)

    def query(self, folder: Path, data_dir: Path) -> Run:
        cmd = [str(self.python), "-m", "rclip.main", "--no-indexing", QUERY]
        return run_measured(cmd, folder, self._datadir(data_dir))

    def vectors(self, data_dir: Path) -> dict[str, np.ndarray]:
        with sqlite3.connect(data_dir / "db.sqlite3") as con:
            rows = con.execute("SELECT filepath, vector FROM images WHERE deleted IS NULL").fetchall()
        return {Path(p).name: np.frombuffer(v, np.float32) for p, v in rows}


def rclip_model_home(venv: Path) -> Path:
    """The export of MODEL, laid out as rclip's model repository is (made once, then reused)."""
    from indexer.onnx_export import export

    home = WORK / "rclip-model"
    if not (EXPORT_DIR / "onnx_model.json").exists():
        export(MODEL, EXPORT_DIR, int8=True)
    import open_clip.tokenizer

    files = {
        f"{RCLIP_MODEL_SUBDIR}/visual.onnx": EXPORT_DIR / "image.onnx",
        f"{RCLIP_MODEL_SUBDIR}/textual.onnx": EXPORT_DIR / "text.onnx",
        RCLIP_VOCAB: Path(open_clip.tokenizer.default_bpe()),
    }
    for rel, src in files.items():
        dst = home / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        dst.symlink_to(src)
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('rclip'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != RCLIP_VERSION:
        raise SystemExit(f"{venv} has rclip {version}; install rclip=={RCLIP_VERSION} there")
    return home


# ---------------------------------------------------------------- figures


def steady_rate(run: Run) -> tuple[float, float, float]:
    """(photos/s after the first batch, CPU % of one core in that window, first batch out at s)."""
    batches = sorted(run.batches)
    if len(batches) < 2:
        return float("nan"), float("nan"), float("nan")
    t0, t1 = batches[0][1], batches[-1][1]
    photos = sum(b[2] for b in batches[1:])
    return photos / (t1 - t0), 100 * run.cpu_between(t0, t1) / (t1 - t0), t0 - run.started


def _fmt(values: list[float], digits: int = 1) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def index_round(report: Report, tools, folders: dict[str, Path], reps: int, keep: dict) -> None:
    per: dict[tuple[str, str], list[dict]] = {}
    for rep in range(reps):
        order = tools if rep % 2 == 0 else tools[::-1]
        for cname, folder in folders.items():
            for tool in order:
                data_dir = Path(tempfile.mkdtemp(dir=WORK, prefix=f"{tool.name}-{cname}-"))
                clock = data_dir.with_suffix(".clock.json")
                cold = drop_page_cache()
                run = tool.index(folder, data_dir, clock)
                n = sum(b[2] for b in run.batches)
                rate, cpu, first = steady_rate(run)
                fig = {
                    "rate": rate,
                    "cpu": cpu,
                    "first": first,
                    "wall": run.wall,
                    "whole": n / run.wall,
                    "rss": run.peak_rss_mb,
                    "pss": run.peak_pss_mb,
                    "n": n,
                    "cold": cold,
                    "load": os.getloadavg()[0],
                }
                per.setdefault((tool.name, cname), []).append(fig)
                print(f"  rep {rep} {tool.name} {cname}: {fig}", flush=True)
                old = keep.get((tool.name, cname))
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
                keep[(tool.name, cname)] = data_dir
    for (tname, cname), figs in per.items():
        label = f"{tname}, {cname} x {figs[0]['n']}"
        loads = f"load {_fmt([f['load'] for f in figs])}"
        report.add(
            "indexing",
            f"{label}: photos/s, start-up excluded (median of {len(figs)})",
            statistics.median(f["rate"] for f in figs),
            "photos/s",
            f"runs {_fmt([f['rate'] for f in figs])}; first batch out at "
            f"{_fmt([f['first'] for f in figs])} s; {loads}",
        )
        report.add(
            "indexing",
            f"{label}: whole command, photos/s (median)",
            statistics.median(f["whole"] for f in figs),
            "photos/s",
            f"wall {_fmt([f['wall'] for f in figs])} s",
        )
        report.add(
            "indexing",
            f"{label}: CPU while indexing (median)",
            statistics.median(f["cpu"] for f in figs),
            "% of one core",
            f"runs {_fmt([f['cpu'] for f in figs], 0)}; 2 cores = 200 %",
        )
        report.add(
            "indexing",
            f"{label}: peak RSS of the process tree (max)",
            max(f["rss"] for f in figs),
            "MB",
            f"runs {_fmt([f['rss'] for f in figs], 0)}; shared pages count once per process",
        )
        report.add(
            "indexing",
            f"{label}: peak PSS of the process tree (max)",
            max(f["pss"] for f in figs),
            "MB",
            f"runs {_fmt([f['pss'] for f in figs], 0)}; shared pages divided among their processes",
        )


def _exif_rotated(folder: Path, name: str) -> bool:
    from PIL import Image

    with Image.open(folder / name) as im:
        return im.getexif().get(0x0112, 1) != 1


def parity(report: Report, tools, keep: dict, folder: Path, cname: str) -> None:
    """Cosine between the tools' vectors of each photo. rclip 3.3.0 does not apply EXIF orientation
    (its read_image is a bare Image.open), photoseek does (invariant 8): rotated photos are reported
    apart, since there the two tools embed different pixels."""
    ps = tools[0].vectors(keep[("photoseek", cname)])
    rc = tools[1].vectors(keep[("rclip", cname)])
    names = sorted(set(ps) & set(rc))
    a = np.stack([ps[n] for n in names])
    b = np.stack([rc[n] / np.linalg.norm(rc[n]) for n in names])
    cos = np.sum(a * b, axis=1)
    others = a @ a.T
    baseline = float(np.median(others[~np.eye(len(names), dtype=bool)]))
    rotated = np.array([_exif_rotated(folder, n) for n in names])
    for label, mask in (("upright", ~rotated), ("EXIF-rotated", rotated)):
        if not mask.any():
            continue
        c = cos[mask]
        worst = ", ".join(f"{names[i]} {cos[i]:.4f}" for i in np.flatnonzero(mask)[np.argsort(c)[:2]])
        report.add(
            "parity",
            f"cosine photoseek vs rclip, same photo ({cname}, {int(mask.sum())} {label} photos), min",
            float(c.min()),
            "",
            f"min {c.min():.5f}, median {np.median(c):.5f}; lowest: {worst}; "
            f"two different photos (photoseek): median {baseline:.4f}",
        )


def queries(report: Report, tools, folders, keep: dict, cname: str, n: int) -> None:
    for cold in (True, False):
        times: dict[str, list[float]] = {t.name: [] for t in tools}
        for i in range(n):
            for tool in tools if i % 2 == 0 else tools[::-1]:
                if cold:
                    drop_page_cache()
                times[tool.name].append(tool.query(folders[cname], keep[(tool.name, cname)]).wall)
        what = "page cache dropped before each" if cold else "page cache warm"
        for name, ts in times.items():
            report.add(
                "query",
                f"{name}: CLI text query, new process, {cname} library ({what})",
                statistics.median(ts),
                "s",
                f"median of {n}: {_fmt(ts, 2)}",
            )


def start_up(report: Report, tools, folders, keep: dict, cname: str) -> None:
    ps, rc = tools
    empty = WORK / "empty-folder"
    empty.mkdir(exist_ok=True)
    for label, folder in (("unchanged", folders[cname]), ("empty", empty)):
        for tool in tools:
            data_dir = keep[(tool.name, cname)] if label == "unchanged" else Path(tempfile.mkdtemp(dir=WORK))
            drop_page_cache()
            run = tool.index(folder, data_dir, data_dir.with_suffix(".clock.json"))
            note = "`index`" if tool is ps else "`rclip QUERY` (scan + one query; rclip has no index-only)"
            extra = ""
            if tool is ps and "done in" in run.out:
                extra = "; " + run.out.strip().splitlines()[-1]
            report.add(
                "start-up",
                f"{tool.name}: {label} folder ({cname if label == 'unchanged' else 'new data dir'})",
                run.wall,
                "s",
                f"{note}, page cache dropped; peak RSS {run.peak_rss_mb:.0f} MB, "
                f"PSS {run.peak_pss_mb:.0f} MB{extra}",
            )
            if label == "empty":
                shutil.rmtree(data_dir, ignore_errors=True)


def serve_first_query(report: Report, ps: Photoseek, data_dir: Path, reps: int = 2) -> None:
    from bench.query import free_port

    python, env = ps.python, ps.env
    for _ in range(reps):
        drop_page_cache()
        port = free_port()
        cmd = [
            str(python),
            "-m",
            "searchd.cli",
            "--data-dir",
            str(data_dir),
            "-q",
            *ps.opts,
            "serve",
            "--port",
            str(port),
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            healthy = _wait_http(proc, port, "/healthz")
            t_health = time.perf_counter() - t0
            _wait_http(proc, port, "/api/search?" + urllib.parse.urlencode({"q": QUERY}), healthy)
            t_query = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(30)
        report.add("serve", "photoseek serve: start to /healthz 200", t_health, "s", "page cache dropped")
        report.add(
            "serve", "photoseek serve: start to its first search answer", t_query, "s", "after /healthz"
        )


def _wait_http(proc: subprocess.Popen, port: int, path: str, _after=None) -> bool:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {proc.stderr.read().decode()[-1500:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return True
            raise RuntimeError(f"{path} answered {resp.status}")
        except (ConnectionError, OSError):
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--rclip-venv", type=Path, default=Path("/work/rclip-venv"))
    ap.add_argument("--counts", default="3mp=150,12mp=100", help="corpus=count,...")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 16 + 8 photos, 1 rep, 1 query")
    ap.add_argument("--photoseek-opts", default="", help="extra global options for photoseek (one string)")
    ap.add_argument(
        "--photoseek-env", action="append", default=[], help="KEY=VALUE for photoseek (repeatable)"
    )
    ap.add_argument("--no-markdown", action="store_true")
    args = ap.parse_args()
    counts = {k: int(v) for k, v in (kv.split("=") for kv in args.counts.split(","))}
    if args.quick:
        counts, args.reps, args.queries = {"3mp": 16, "12mp": 8}, 1, 1
    WORK.mkdir(parents=True, exist_ok=True)
    info = machine.describe()
    info["command"] = " ".join(["python -m bench.rclip_compare", *sys.argv[1:]])
    report = Report(info)
    home = rclip_model_home(args.rclip_venv)
    folders = {name: corpus(name, n) for name, n in counts.items()}
    for name, folder in folders.items():
        meta = describe(folder)
        report.add(
            "corpora",
            f"{name}: {meta['count']} JPEGs (every 5th EXIF-rotated, portrait)",
            meta["bytes"] / meta["count"] / 1e6,
            "MB/file",
        )
    ps_env = dict(kv.split("=", 1) for kv in args.photoseek_env)
    tools = (
        Photoseek(Path(sys.executable), shlex.split(args.photoseek_opts), ps_env),
        Rclip(args.rclip_venv, home),
    )
    keep: dict = {}
    first = next(iter(folders))
    try:
        index_round(report, tools, folders, args.reps, keep)
        parity(report, tools, keep, folders[first], first)
        queries(report, tools, folders, keep, first, args.queries)
        start_up(report, tools, folders, keep, first)
        serve_first_query(report, tools[0], keep[("photoseek", first)])
    finally:
        for d in keep.values():
            shutil.rmtree(d, ignore_errors=True)
    report.add("suite", "load average (1 min) at the end", machine.load_average()[0], "")
    stem = time.strftime("%Y%m%d-%H%M") + "-rclip-compare"
    print(f"saved {report.save_json(stem)}")
    if not args.no_markdown:
        report.append_markdown(f"rclip {RCLIP_VERSION} beside photoseek, same weights, one run (issue 11)")


if __name__ == "__main__":
    main()
