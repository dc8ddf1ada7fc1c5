"""The plan stage: compare what is under a root now with what the catalog knows of it.

Both sides stream in path order and are merged, so memory stays flat however many photos a root
holds: the walk is sorted (indexer/scan.py), the catalog's rows come a page at a time, and the files
to read go to an unlinked temporary file next to the catalog (nothing is left behind by a kill).
What stays in memory is what vanished (it may have moved: its content is kept for the move check)
and what could not even be stat'ed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from indexer.catalog import images
from indexer.catalog.images import Known
from indexer.catalog.schema import DELETED, FAILED, OK
from indexer.catalog.store import Catalog
from indexer.scan import FileEntry, decoder_now_available, walk_photos


@dataclass
class RootPlan:
    root: str
    to_read: int = 0  # new or changed files: read, hash, decode (their entries are spooled)
    unchanged: int = 0
    unreadable: list[FileEntry] = field(default_factory=list)  # recorded as failed without reading
    missing: list[Known] = field(default_factory=list)  # in the catalog, gone from disk
    _spool: IO[str] | None = None

    def entries(self) -> Iterator[FileEntry]:
        """The files to read, in path order (once)."""
        if self._spool is None:
            return
        self._spool.seek(0)
        for line in self._spool:
            path, size, mtime = json.loads(line)
            yield FileEntry(path, size, mtime)

    def claims(self) -> dict[str, list[Known]]:
        """content hash -> searchable rows that vanished: a new file with that content moved there."""
        out: dict[str, list[Known]] = {}
        for k in self.missing:
            if k.content_hash and k.status == OK:
                out.setdefault(k.content_hash, []).append(k)
        return out

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> RootPlan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plan_root(catalog: Catalog, root_id: int, root: str, spool_dir: Path, skip: set[str]) -> RootPlan:
    plan = RootPlan(root)
    spool_dir.mkdir(parents=True, exist_ok=True)
    # Closed by RootPlan.close(); unlinked at once, so a kill leaves nothing on disk.
    plan._spool = tempfile.TemporaryFile("w+", dir=spool_dir, prefix=".plan-", encoding="utf-8")  # noqa: SIM115
    known = images.known_in_root(catalog, root_id)
    k = next(known, None)
    for entry in walk_photos(root, skip):
        while k is not None and k.path < entry.path:
            _vanished(plan, k)
            k = next(known, None)
        same_path = k if k is not None and k.path == entry.path else None
        if same_path is not None:
            k = next(known, None)
        _compare(plan, entry, same_path)
    while k is not None:
        _vanished(plan, k)
        k = next(known, None)
    plan._spool.flush()
    return plan


def _compare(plan: RootPlan, entry: FileEntry, k: Known | None) -> None:
    if entry.error:
        if k is None or k.status != FAILED:
            plan.unreadable.append(entry)
        else:
            plan.unchanged += 1
        return
    same = k is not None and k.size == entry.size and k.mtime == entry.mtime and k.status != DELETED
    if same and not (k.status == FAILED and decoder_now_available(k.error)):  # type: ignore[union-attr]
        plan.unchanged += 1  # size and mtime agree: trust it without reading (a failed file too)
        return
    assert plan._spool is not None
    plan._spool.write(json.dumps([entry.path, entry.size, entry.mtime]) + "\n")
    plan.to_read += 1


def _vanished(plan: RootPlan, k: Known) -> None:
    if k.status != DELETED:
        plan.missing.append(k)
