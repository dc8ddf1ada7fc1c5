"""Hostile requests against a real `photoseek serve`: wall time and server memory of the worst ones.

    python -m bench.hostile              # appends a section to bench/RESULTS.md
    python -m bench.hostile --no-append

Cases (issue 12): a small PNG (~160 KB) that declares 12000x12000 px (144 MP) sent to POST /api/search,
one and three at once; the same for a 7000x7000 PNG (49 MP, the largest upload that the default
max_upload_megapixels of 50 lets through once it exists); 40,000 labels to POST /api/classify;
3,000 `minus` parts to GET /api/search.
The server is `photoseek serve` in its own process over a 40-photo toy library (toy CLIP). For each
case: the wall time until every answer is in, the status codes, and the server's RSS before, at its
peak (VmHWM, reset through /proc/PID/clear_refs before each case) and a few seconds after (memory
handed back or kept).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import machine
from bench.query import cli_base, free_port
from bench.report import Report

LIBRARY_SIZE = 40
SETTLE_S = 3.0  # how long after the answers the RSS is read again
# Sent with every request: the header that marks a request as made by photoseek's own page or a
# script (searchd/origins.py); harmless to a server that does not ask for it.
CLIENT_HEADERS = {"X-Photoseek": "1"}


@dataclass
class Outcome:
    statuses: list[int]
    wall_s: float
    rss_before_mib: float
    peak_mib: float
    rss_after_mib: float
    message: str


def _status_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise LookupError(field)


def _mib(pid: int, field: str) -> float:
    return round(_status_kib(pid, field) / 1024, 1)


def grey_png(side: int) -> bytes:
    """A grey side x side PNG: 12000 px is ~160 KB on the wire, 144 MP (432 MB as RGB) once decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = "benchhostileboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, body=body, headers={**CLIENT_HEADERS, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def measure(pid: int, send: Callable[[], tuple[int, bytes]], copies: int) -> Outcome:
    """Run `copies` of send() at once and watch the server process's memory."""
    time.sleep(1.0)  # let the previous case's threads finish handing memory back
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _mib(pid, "VmRSS")
    results: list[tuple[int, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(send())) for _ in range(copies)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    peak = _mib(pid, "VmHWM")
    time.sleep(SETTLE_S)
    after = _mib(pid, "VmRSS")
    statuses = sorted(status for status, _ in results)
    try:
        message = json.loads(results[0][1]).get("error", "") or "ok"
    except ValueError:
        message = results[0][1][:80].decode(errors="replace")
    return Outcome(statuses, round(wall, 2), before, peak, after, message[:120])


@contextmanager
def served_library(workdir: Path) -> Iterator[tuple[int, int]]:
    """A toy library indexed by `photoseek index` and served by `photoseek serve`: (port, pid)."""
    from indexer.toyworld import build_library

    photos, data = workdir / "photos", workdir / "data"
    build_library(photos, LIBRARY_SIZE, 3)
    subprocess.run(
        [*cli_base(data), "--model", "toy", "index", str(photos), "--no-progress"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([*cli_base(data), "serve", "--port", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(workdir / 'serve.log').read_text()[-1500:]}")
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /healthz within 600 s")
            time.sleep(0.1)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def cases(port: int) -> dict[str, tuple[Callable[[], tuple[int, bytes]], int]]:
    png, largest = grey_png(12000), grey_png(7000)
    upload, ctype = multipart(png, "bomb.png")
    accepted, accepted_ctype = multipart(largest, "large.png")
    labels = json.dumps({"id": 1, "labels": [f"label {i}" for i in range(40_000)]}).encode()
    minus = urlencode([("q", "a red circle")] + [("minus", f"thing {i}") for i in range(3000)])

    def search_upload():
        return request(port, "POST", "/api/search", upload, {"Content-Type": ctype})

    def search_largest():
        return request(port, "POST", "/api/search", accepted, {"Content-Type": accepted_ctype})

    def classify_labels():
        return request(port, "POST", "/api/classify", labels, {"Content-Type": "application/json"})

    def search_minus():
        return request(port, "GET", f"/api/search?{minus}")

    return {
        f"POST /api/search, {len(png) // 1024} KB PNG declaring 144 MP, 1 at a time": (search_upload, 1),
        f"POST /api/search, {len(png) // 1024} KB PNG declaring 144 MP, 3 at once": (search_upload, 3),
        f"POST /api/search, {len(largest) // 1024} KB PNG of 49 MP, 1 at a time": (search_largest, 1),
        f"POST /api/search, {len(largest) // 1024} KB PNG of 49 MP, 3 at once": (search_largest, 3),
        "POST /api/classify, 40,000 labels": (classify_labels, 1),
        "GET /api/search, 3,000 minus parts": (search_minus, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--label", default="", help="words added to the section title (e.g. 'before')")
    args = ap.parse_args(argv)
    info = machine.describe()
    info["command"] = " ".join(["python", "-m", "bench.hostile", *sys.argv[1:]])
    report = Report(info)
    with (
        tempfile.TemporaryDirectory(prefix="photoseek-hostile-") as tmp,
        served_library(Path(tmp)) as (
            port,
            pid,
        ),
    ):
        idle = _mib(pid, "VmRSS")
        report.add("hostile requests", "server RSS, idle after start-up", idle, "MiB")
        for name, (send, copies) in cases(port).items():
            o = measure(pid, send, copies)
            note = f"status {', '.join(map(str, o.statuses))}: {o.message}".replace("|", "/")
            report.add("hostile requests", f"{name}: wall time", o.wall_s, "s", note)
            before = f"before {o.rss_before_mib}"
            report.add("hostile requests", f"{name}: peak RSS", o.peak_mib, "MiB", before)
            report.add("hostile requests", f"{name}: RSS {SETTLE_S:g} s after", o.rss_after_mib, "MiB")
    title = "searchd under hostile requests" + (f", {args.label}" if args.label else "")
    report.save_json("hostile" + (f"-{args.label}" if args.label else ""))
    if not args.no_append:
        report.append_markdown(title)
    print(report.markdown(title))


if __name__ == "__main__":
    main()
