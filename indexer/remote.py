"""Ask a running `photoseek serve` of the same data dir instead of starting up: a CLI query then costs
one HTTP round trip to a process that holds the model and the vector index, not a cold start.

serve writes DATA_DIR/serve.json (its pid and URL) once it listens and removes it when it stops. A
stale file (the server was killed), a refused connection or a server that wants another token all
mean "not served": the CLI answers locally. Only the standard library is imported here.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from indexer.errors import BadInput

TIMEOUT_S = 30.0
HIT_FIELDS = (  # indexer.search.Hit's, in the same order: the CLI prints either the same way
    "id", "score", "path", "width", "height", "taken_at", "camera", "format", "caption", "generated",
)  # fmt: skip


def write_serve_info(path: Path, url: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    os.replace(tmp, path)


def remove_serve_info(path: Path) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def served_url(path: Path) -> str | None:
    """The URL of a live `photoseek serve` of this data dir, or None."""
    try:
        info = json.loads(path.read_text())
        pid, url = int(info["pid"]), str(info["url"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no file, a garbled one, or a server that died without cleaning up
    return url


def search(
    url: str, token: str, text: str, likes: list[int], minuses: list[str], limit: int
) -> list[dict] | None:
    """The server's answer as a list of hits (HIT_FIELDS), or None if it could not answer."""
    params = [("q", text), ("limit", str(limit))]
    params += [("like", str(i)) for i in likes] + [("minus", m) for m in minuses]
    request = urllib.request.Request(url.rstrip("/") + "/api/search?" + urllib.parse.urlencode(params))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 400:  # the query itself is wrong: the local path would say the same
            raise BadInput(_error_of(exc)) from None
        return None  # 401/403 (another token), 409 (another model), 5xx: answer locally
    except (OSError, ValueError):
        return None
    return [{k: r.get(k) for k in HIT_FIELDS} for r in doc.get("results", [])][:limit]


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (OSError, ValueError):
        return str(exc.reason)
