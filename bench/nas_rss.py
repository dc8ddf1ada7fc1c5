"""Peak memory of `photoseek watch` on a first scan of 12 MP photos with the NAS profile.

Runs the real command in a subprocess (deploy/nas.toml, a real-size model with random weights) and
samples the RSS of its whole process tree (the watcher and its decoding workers) with psutil. Then it
waits, still watching, until the idle model is unloaded (model_idle_unload_s, shortened here) and
samples again: what a quiet NAS pays to keep photoseek running.

The corpus: `bench.corpus` draws K distinct photo-like 12 MP JPEGs (cached in /tmp); file i is photo
i % K with a unique JPEG comment segment, so every file has its own content hash (embedded, never
deduplicated) while generating 2,000 of them costs seconds instead of half an hour. Decoding and the
model do the same work as on distinct photos.

    python -m bench.nas_rss --n 2000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import machine
from bench.corpus import CACHE, corpus
from bench.report import Report

REPO = Path(__file__).resolve().parent.parent
PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")
DISTINCT = 48
IDLE_UNLOAD_S = 20.0


def expanded_corpus(n: int) -> Path:
    """n 12 MP JPEGs with distinct content hashes, cached in /tmp."""
    folder = CACHE / f"nas-12mp-{n}"
    done = folder / "done.json"
    if done.exists():
        return folder
    bases = sorted(corpus("12mp", DISTINCT).glob("*.jpg"))
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(n):
        data = bases[i % len(bases)].read_bytes()
        comment = f"photoseek nas_rss {i}".encode()
        com = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment  # a COM segment after SOI
        sub = folder / f"{i // 500:03d}"  # albums of 500, as a NAS share would have
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"IMG_{i:05d}.jpg").write_bytes(data[:2] + com + data[2:])
    done.write_text(json.dumps({"n": n, "distinct": len(bases)}))
    return folder


def tree_rss(proc: psutil.Process, pss: bool = False) -> tuple[int, int]:
    """(RSS of the process and all its children, RSS of the process alone), bytes. pss=True: PSS
    instead (shared library pages divided among the processes that map them; slower to read)."""

    def mem(p: psutil.Process) -> int:
        return p.memory_full_info().pss if pss else p.memory_info().rss

    try:
        main = mem(proc)
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    total = main
    for k in kids:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just exited
            total += mem(k)
    return total, main


def read_status(data: Path) -> dict:
    try:
        return json.loads((data / "watch-status.json").read_text())
    except (OSError, ValueError):
        return {}


def unit_environment() -> dict[str, str]:
    """The Environment= lines of the systemd unit, but the data dir and thread count set here."""
    out = {}
    for line in (REPO / "deploy" / "photoseek-watch.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            if key not in ("PHOTOSEEK_DATA_DIR", "OMP_NUM_THREADS"):
                out[key] = value
    return out


def measure(n: int, model: str, config: Path, threads: int) -> dict:
    photos = expanded_corpus(n)
    data = Path(tempfile.mkdtemp(prefix="photoseek-nas-rss-"))
    # nice = 0: on a shared machine, the profile's nice 10 would measure the neighbours' load.
    env = {
        **os.environ,
        "PHOTOSEEK_MODEL_IDLE_UNLOAD_S": str(IDLE_UNLOAD_S),
        "PHOTOSEEK_NICE": "0",
        # On a machine busier than its cores, two OpenMP threads spin-wait for each other and crawl.
        "PHOTOSEEK_TORCH_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        **unit_environment(),  # what deploy/photoseek-watch.service sets (malloc tuning)
    }
    cmd = [PHOTOSEEK, "--config", str(config), "--data-dir", str(data), "--model", model, "-q"]
    cmd += ["watch", str(photos)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_total = peak_main = peak_pss = 0
    scan_s = None
    idle: list[int] = []
    series: list[tuple[float, int]] = []  # (seconds, tree RSS) during the scan: flat or growing?
    next_pss = 0.0
    try:
        while proc.poll() is None:
            total, main = tree_rss(ps)
            status = read_status(data)
            now = time.monotonic() - started
            if scan_s is None:
                peak_total, peak_main = max(peak_total, total), max(peak_main, main)
                series.append((now, total))
                if now >= next_pss:
                    peak_pss, next_pss = max(peak_pss, tree_rss(ps, pss=True)[0]), now + 1.0
                if status.get("state") == "watching" and status.get("roots"):
                    scan_s = now
            elif not status.get("model_loaded", True):
                idle.append(total)
                if len(idle) >= 8:
                    break
            if time.monotonic() - started > 6 * 3600:
                raise TimeoutError("the first scan took over 6 hours")
            time.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    if proc.returncode != 0 or scan_s is None:
        raise RuntimeError(f"photoseek watch failed ({proc.returncode}):\n{err[-3000:]}")
    from indexer.catalog import open_catalog

    catalog = open_catalog(data)
    with catalog.session() as s:
        from sqlalchemy import func, select

        from indexer.catalog.schema import OK, Image

        ok = s.scalar(select(func.count()).select_from(Image).where(Image.status == OK))
    catalog.close()
    shutil.rmtree(data, ignore_errors=True)
    half = scan_s / 2 if scan_s else 0
    return {
        "peak_first_half_mb": max((r for t, r in series if t < half), default=0) / 2**20,
        "peak_second_half_mb": max((r for t, r in series if t >= half), default=0) / 2**20,
        "peak_pss_mb": peak_pss / 2**20,
        "n": n,
        "ok": ok,
        "scan_s": scan_s,
        "peak_total_mb": peak_total / 2**20,
        "peak_main_mb": peak_main / 2**20,
        "idle_mb": (min(idle) / 2**20) if idle else None,
        "command": " ".join(cmd[:1] + cmd[1:]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="photos in the first scan")
    ap.add_argument("--model", default="ViT-B-32-256:random")
    ap.add_argument("--config", type=Path, default=REPO / "deploy" / "nas.toml")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the profile's 2)")
    ap.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    report = Report(machine.describe())
    report.machine["command"] = " ".join(["python", "-m", "bench.nas_rss", *sys.argv[1:]])
    r = measure(args.n, args.model, args.config, args.threads)
    note = f"{r['ok']} of {args.n} indexed; {args.config.name}, {args.model}, {args.threads} thread(s)"
    section = "watch: NAS profile, first scan of 12 MP JPEGs"
    report.add(section, "peak RSS, watcher + decoding workers", r["peak_total_mb"], "MiB", note)
    report.add(section, "peak RSS, watcher process alone", r["peak_main_mb"], "MiB")
    report.add(section, "peak PSS, watcher + workers (shared pages split)", r["peak_pss_mb"], "MiB")
    report.add(
        section,
        "peak RSS in the first / second half of the scan",
        r["peak_second_half_mb"],
        "MiB",
        f"first half: {r['peak_first_half_mb']:.0f} MiB",
    )
    report.add(section, "first scan", r["n"] / r["scan_s"], "photos/s", f"{r['scan_s']:.0f} s in all")
    report.add(
        section,
        f"RSS while watching, idle model unloaded ({IDLE_UNLOAD_S:g} s idle)",
        r["idle_mb"],
        "MiB",
    )
    report.save_json(f"nas_rss-{args.n}")
    if not args.no_append:
        report.append_markdown(f"photoseek watch on the NAS profile, {args.n} photos")


if __name__ == "__main__":
    main()
