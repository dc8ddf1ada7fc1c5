"""Where photoseek's start-up goes: cProfile and `python -X importtime` of an empty `index` and of a
cold `photoseek search` (new process), with the benchmark model.

    flock /tmp/photoseek-cpu.lock .venv/bin/python -m bench.startup_profile [--top 25]

Writes bench/out/<stamp>-profile-{index-empty,search}.{prof,txt} (pstats sorted by cumulative time,
and the slowest imports by cumulative time) and prints them. The page cache is warm (a second run of
each is profiled), so what shows is CPU work, not disk reads.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import CACHE, corpus
from bench.report import OUT_DIR

MODEL = "ViT-B-32-256:random"
REPO = Path(__file__).resolve().parent.parent


def cli(data_dir: Path, *args: str) -> list[str]:
    return [
        "-m",
        "searchd.cli",
        "--data-dir",
        str(data_dir),
        "--model",
        MODEL,
        "--device",
        "cpu",
        "-q",
        *args,
    ]


def profiled(name: str, args: list[str], top: int, reset) -> tuple[float, str]:
    """Wall seconds of the command under cProfile, and a text report of its top functions and imports."""
    prof = OUT_DIR / f"{name}.prof"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), *args],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    reset()
    t0 = time.perf_counter()
    imp = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall_plain = time.perf_counter() - t0
    lines = [
        f"## {name}: {' '.join(args)}",
        f"wall under cProfile {wall:.1f} s; without {wall_plain:.1f} s",
        "",
    ]
    stats = pstats.Stats(str(prof))
    lines += ["### top functions by cumulative time (s)", ""]
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][3], reverse=True
    )[: top * 3]:
        where = f"{Path(file).name}:{line}" if line else file
        if "site-packages" in file:
            where = file.split("site-packages/")[1] + f":{line}"
        elif str(REPO) in file:
            where = file.replace(str(REPO) + "/", "") + f":{line}"
        lines.append(f"{ct:8.2f}  {nc:7d}  {func}  ({where})")
    lines += ["", "### slowest imports (cumulative, s)", ""]
    rows = []
    for m in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", imp.stderr):
        rows.append((int(m.group(2)) / 1e6, len(m.group(3)) // 2, m.group(4)))
    for cum, depth, mod in sorted(rows, reverse=True)[: top * 2]:
        lines.append(f"{cum:8.2f}  {'  ' * min(depth, 4)}{mod}")
    text = "\n".join(lines) + "\n"
    (OUT_DIR / f"{name}.txt").write_text(text)
    return wall_plain, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    OUT_DIR.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix="profile-"))
    stamp = time.strftime("%Y%m%d-%H%M")
    try:
        empty = work / "empty"
        empty.mkdir()
        photos = corpus("3mp", 16)
        library = work / "library"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, *cli(library, "index", str(photos), "--no-progress")],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        for name, argv in (
            ("index-empty", cli(work / "fresh", "index", str(empty), "--no-progress")),
            ("search", cli(library, "search", "a child on a beach")),
        ):

            def reset() -> None:  # an empty index on a new data dir each time
                shutil.rmtree(work / "fresh", ignore_errors=True)

            reset()
            subprocess.run(
                [sys.executable, *argv], cwd=REPO, env=env, check=True, capture_output=True
            )  # warm
            reset()
            wall, text = profiled(f"{stamp}-profile-{name}", argv, args.top, reset)
            print(text, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
