"""What the watcher is doing, for `photoseek status`.

The running watcher rewrites a small JSON file in the data dir every few seconds (queue length, pid,
when it started, the last thing it did); `status` joins it with counts from the catalog. A file
whose pid is gone is a watcher that died: status says so instead of trusting it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexer.catalog.summary import CatalogSummary

STATUS_EVERY_S = 2.0


@dataclass
class WatchStatus:
    pid: int
    started_at: float
    state: str = "starting"  # starting / scanning ROOT / watching / stopping
    queue: int = 0  # events not yet looked at
    waiting: int = 0  # files waiting to settle or to be removed
    model_loaded: bool = False
    last_change: str = ""  # e.g. "indexed /photos/a.jpg"
    last_change_at: float = 0.0
    roots: dict[str, dict] = field(default_factory=dict)  # path -> {"observer", "online", "why"}
    updated_at: float = 0.0


class StatusFile:
    """Owned by the watcher: rewritten atomically, at most every STATUS_EVERY_S unless forced."""

    def __init__(self, path: Path, status: WatchStatus) -> None:
        self.path = path  # the data dir's watch-status.json (indexer/layout.py)
        self.status = status
        self._written = 0.0

    def note(self, what: str) -> None:
        self.status.last_change, self.status.last_change_at = what, time.time()

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._written < STATUS_EVERY_S:
            return
        self.status.updated_at, self._written = now, now
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(self.status.__dict__, indent=1))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a full disk must not stop the indexer; status is a nicety

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_watch_status(path: Path) -> tuple[dict | None, str]:
    """(the running watcher's status, "") or (None, why not running), from its status file."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "not running"
    if not _alive(int(doc.get("pid", 0))):
        return None, f"not running (pid {doc.get('pid')} ended without cleaning up: killed or crashed)"
    return doc, ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def render_status(summary: CatalogSummary, watcher: dict | None, why_not: str) -> str:
    lines = []
    if watcher is None:
        lines.append(f"watcher: {why_not}")
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(watcher["started_at"]))
        lines.append(f"watcher: pid {watcher['pid']}, {watcher['state']}, since {started}")
        lines.append(
            f"  queue: {watcher['queue']} events, {watcher['waiting']} files waiting; "
            f"model {'loaded' if watcher.get('model_loaded') else 'not loaded'}"
        )
        if watcher.get("last_change"):
            at = time.strftime("%H:%M:%S", time.localtime(watcher["last_change_at"]))
            lines.append(f"  last: {watcher['last_change']} at {at}")
    lines.append("roots:")
    live = (watcher or {}).get("roots", {})
    for r in summary.roots:
        w = live.get(r["path"])
        online = w["online"] if w else r["online"]
        observer = (w or {}).get("observer") or "not watched"
        why = f" ({w['why']})" if w and w.get("why") else ""
        lines.append(
            f"  {r['path']}: {'online' if online else 'OFFLINE'}{why}, {observer}; "
            f"{r['ok']} ok, {r['failed']} failed, {r['deleted']} deleted; "
            f"last scan {r['last_scan_at'] or 'never'}"
        )
    if not summary.roots:
        lines.append("  (none yet: photoseek watch ~/Pictures)")
    c = summary.counts
    lines.append(f"images: {c['ok']} ok, {c['failed']} failed, {c['deleted']} deleted")
    if summary.failures:
        lines.append("failures by reason:")
        lines += [f"  {n:6d}  {reason}" for reason, n in summary.failures]
    if summary.last_change:
        at, kind, path = summary.last_change
        lines.append(f"last change: {kind} {path} at {at} UTC")
    return "\n".join(lines)
