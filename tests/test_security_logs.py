"""A request cannot forge a line of searchd's log (issue 12, point 6).

Paths and values that hold a newline, a carriage return, an escape sequence or a bidirectional
override are logged with those characters spelled out; the real `photoseek serve` is asked for such a
path and its log is read back.
"""

from __future__ import annotations

import http.client
import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from searchd.logs import OneLineFilter, escape
from tests.watch_support import wait_for

PHOTOSEEK = str(Path(sys.executable).parent / "photoseek")
FORGED = "2026-01-01 00:00:00,000 INFO searchd.auth: login ok for admin"


def test_control_characters_are_spelled_out():
    assert escape("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert escape("evil\u202egpj.exe \u2028x \x85y \x00") == "evil\\u202egpj.exe \\u2028x \\x85y \\x00"
    assert escape("Zürich ✓ 東京") == "Zürich ✓ 東京"  # other text is left alone


def test_a_record_is_one_line_and_a_traceback_cannot_pass_for_a_record():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OneLineFilter())
    log = logging.getLogger("photoseek-test-logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("refusing %s: %r", f"/photos/a\n{FORGED}", {"q": "x\ry"})
        try:
            raise ValueError(f"bad name\n{FORGED}")
        except ValueError:
            log.exception("failed on %s", "b\nc")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"WARNING photoseek-test-logs: refusing /photos/a\\n{FORGED}: {{'q': 'x\\ry'}}"
    assert lines[1] == "ERROR photoseek-test-logs: failed on b\\nc"
    assert all(line.startswith("| ") for line in lines[2:]), lines  # the traceback's own lines
    assert not any(line.startswith(FORGED) for line in lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def test_the_served_log_escapes_what_a_request_sends(tmp_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [PHOTOSEEK, "--data-dir", str(tmp_path / "data"), "--model", "toy", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: proc.poll() is not None or get(port, "/healthz") == 200, 300, "serve to start")
        assert proc.poll() is None, log_path.read_text()[-2000:]
        forged_path = "/api/nothing/" + quote(f"x\n{FORGED}\r\x1b[2K")
        assert get(port, forged_path) == 404
        assert get(port, "/api/search?q=" + quote(f"red\n{FORGED}") + "&limit=x") == 400
    finally:
        proc.terminate()
        proc.wait(60)
    text = log_path.read_text()
    assert f"x\\n{FORGED}\\r\\x1b[2K" in text, text[-3000:]  # logged, spelled out
    assert not any(line.startswith(FORGED) for line in text.splitlines()), text[-3000:]
    assert "\x1b" not in text
