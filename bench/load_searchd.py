"""Load test of searchd: many concurrent clients, mixed queries, while the indexer keeps adding photos.

    .venv/bin/python -m bench.load_searchd                       # 50 clients, 60 s, toy library of 400
    .venv/bin/python -m bench.load_searchd --clients 20 --seconds 20 --no-append

searchd runs in its own process (as `photoseek serve` would: create_app + waitress), the clients and
the writer in this one. Reports throughput, p50/p99 latency per kind and the error count (must be 0),
and appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

RESULTS = Path(__file__).parent / "RESULTS.md"
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "black")
SHAPES = ("circle", "square", "triangle", "star")
# kind -> share of requests
MIX = {"text": 0.35, "like": 0.15, "filtered": 0.2, "browse": 0.05, "thumb": 0.25}


def _serve(data_dir: str, threads: int, ready: multiprocessing.Queue) -> None:
    """The searchd process: the library's model, create_app, waitress (what `photoseek serve` does)."""
    from indexer.library import Library
    from indexer.settings import Settings
    from searchd.app import create_app
    from searchd.following import Follower
    from searchd.serve import create_server

    settings = Settings(data_dir=Path(data_dir), model="toy", device="cpu", torch_threads=2)
    library = Library.open(settings)
    library.encoder()  # loaded before the clients start, as serve's background load would have
    app = create_app(library)
    server = create_server(app, settings, "127.0.0.1", 0, threads)
    Follower(library).start()
    ready.put(server.effective_port)
    server.run()


class Client(threading.Thread):
    def __init__(self, port: int, stop: threading.Event, seed: int, ids: list[int], folders: list[str]):
        super().__init__(daemon=True)
        self.port, self.stop, self.rng = port, stop, random.Random(seed)
        self.ids, self.folders = ids, folders
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.conn: http.client.HTTPConnection | None = None

    def request(self, path: str) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a keep-alive connection the server closed is retried once
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def next_path(self) -> tuple[str, str]:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        colour, shape = self.rng.choice(COLOURS), self.rng.choice(SHAPES)
        if kind == "text":
            return kind, "/api/search?" + urlencode({"q": f"a {colour} {shape}", "limit": 40})
        if kind == "like":
            return kind, "/api/search?" + urlencode({"like": self.rng.choice(self.ids), "limit": 40})
        if kind == "filtered":
            f = self.rng.choice(
                [
                    {"type": "png"},
                    {"camera": "Lumo X100"},
                    {"date_from": "2021-01-01", "date_to": "2022-12-31"},
                    {"folder": self.rng.choice(self.folders)},
                    {"min_score": "0.2"},
                ]
            )
            return kind, "/api/search?" + urlencode({"q": f"a {colour} {shape}", "limit": 40, **f})
        if kind == "browse":
            return kind, "/api/search?" + urlencode({"limit": 40, "offset": self.rng.randrange(0, 200)})
        return kind, f"/api/images/{self.rng.choice(self.ids)}/thumb"

    def run(self) -> None:
        while not self.stop.is_set():
            kind, path = self.next_path()
            started = time.perf_counter()
            try:
                status, body = self.request(path)
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none may pass silently
                self.errors.append(f"{kind} {path}: {type(exc).__name__}: {exc}")
                continue
            self.latency[kind].append(time.perf_counter() - started)
            if status != 200:
                self.errors.append(f"{kind} {path}: HTTP {status} {body[:200]!r}")


def writer_loop(settings, root: Path, stop: threading.Event, interval_s: float, added: list[int]) -> None:
    """The indexer: a few new photos every interval, committed by the library's writer (its own
    connections, as `photoseek watch` in another process would)."""
    import numpy as np

    from indexer.library import Library
    from indexer.toyworld import render, sample_spec

    library = Library.open(settings)
    writer = library.writer()
    rng = np.random.default_rng(123)
    batch = 0
    while not stop.wait(interval_s):
        batch += 1
        paths = []
        for i in range(5):
            path = root / "incoming" / f"new_{batch:04d}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            render(sample_spec(rng), (256, 256), rng).save(path)
            paths.append(str(path.resolve()))
        writer.index_files(paths, root)
        added.append(len(paths))
    library.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--n", type=int, default=400, help="photos in the toy library")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    ap.add_argument("--writer-interval", type=float, default=1.0, help="seconds between indexer batches")
    ap.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from indexer.library import Library
    from indexer.settings import Settings
    from indexer.toyworld import build_library

    work = Path(tempfile.mkdtemp(prefix="photoseek-load-"))
    try:
        root = work / "photos"
        build_library(root, args.n, seed=1)
        settings = Settings(data_dir=work / "data", model="toy", device="cpu", workers=0, torch_threads=2)
        with Library.open(settings) as library:
            library.writer().index_roots([root])

        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        server = ctx.Process(target=_serve, args=(str(settings.data_dir), args.threads, ready), daemon=True)
        server.start()
        port = ready.get(timeout=900)  # a busy shared machine can take minutes to import torch
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        warm.request("GET", "/api/search?limit=200")
        answer = json.loads(warm.getresponse().read())
        warm.close()
        ids = [r["id"] for r in answer["results"]]
        folders = sorted({r["folder"] for r in answer["results"]})

        load_before = os.getloadavg()
        stop = threading.Event()
        added: list[int] = []
        clients = [Client(port, stop, seed, ids, folders) for seed in range(args.clients)]
        writer = threading.Thread(
            target=writer_loop, args=(settings, root, stop, args.writer_interval, added), daemon=True
        )
        started = time.perf_counter()
        writer.start()
        for c in clients:
            c.start()
        time.sleep(args.seconds)
        stop.set()
        for c in clients:
            c.join(timeout=120)
        elapsed = time.perf_counter() - started
        writer.join(timeout=120)
        load_after = os.getloadavg()
        final = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        final.request("GET", "/healthz")
        health = json.loads(final.getresponse().read())
        final.close()
        server.terminate()
        server.join(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    latency: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    for c in clients:
        for kind, values in c.latency.items():
            latency[kind] += values
        errors += c.errors
    everything = [v for values in latency.values() for v in values]
    total = len(everything)
    lines = [
        f"## searchd load test ({datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"`python -m bench.load_searchd --clients {args.clients} --seconds {args.seconds:g} --n {args.n} "
        f"--threads {args.threads}`: toy CLIP on CPU, {platform.machine()}, {os.cpu_count()} cores "
        f"(shared; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after). "
        f"searchd in its own process (waitress, {args.threads} threads); a Writer added {sum(added)} "
        f"photos in {len(added)} commits during the run; the server ended at {health['images']} images.",
        "",
        f"- {total} requests in {elapsed:.1f} s: **{total / elapsed:.0f} req/s**; "
        f"p50 {percentile(everything, 50) * 1000:.1f} ms, p99 {percentile(everything, 99) * 1000:.1f} ms; "
        f"**errors: {len(errors)}**",
        "",
        "| kind | requests | p50 ms | p99 ms |",
        "| --- | --- | --- | --- |",
    ]
    for kind in MIX:
        values = latency.get(kind, [])
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        lines.append(f"| {kind} | {len(values)} | {p50:.1f} | {p99:.1f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    for e in errors[:20]:
        print("ERROR", e)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + report)
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
