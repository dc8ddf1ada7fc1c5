"""Walk a root and compare it with the catalog: what is new, changed, unchanged or missing."""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.decode import describe_os_error
from indexer.formats import NO_HEIF, NO_RAW, PHOTO_EXTS, heif_available

# Folders that hold no photos of the user's: NAS thumbnail caches, recycle bins.
SKIP_DIRS = {"@eaDir", "#recycle", "#snapshot", ".thumbnails", "$RECYCLE.BIN", "lost+found"}


@dataclass(frozen=True)
class Known:
    """What the catalog knows of a path."""

    id: int
    size: int
    mtime: float
    status: str
    content_hash: str | None
    error: str | None = None


@dataclass
class FileEntry:
    path: str
    size: int
    mtime: float
    error: str | None = None  # stat failed: a broken link, a loop, unreadable


@dataclass
class ScanPlan:
    root: str
    to_read: list[FileEntry] = field(default_factory=list)  # new or changed: read, hash, decode
    unreadable: list[FileEntry] = field(default_factory=list)  # recorded as failed without reading
    unchanged: int = 0
    missing: list[Known] = field(default_factory=list)  # in the catalog, gone from disk
    seen: set[str] = field(default_factory=set)


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_EXTS


def walk_photos(root: str, skip: set[str] | None = None) -> Iterator[FileEntry]:
    """Every photo file under root. Directory symlinks are not followed (no loops, no escapes)."""
    skip = skip or set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue  # a folder we cannot list holds nothing we can index; its parent goes on
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if e.name not in SKIP_DIRS and not e.name.startswith(".") and e.path not in skip:
                    stack.append(e.path)
                continue
            if not is_photo_name(e.name):
                continue
            try:
                st = os.stat(e.path)  # follows a file symlink: a linked photo is indexed
            except OSError as exc:
                yield FileEntry(e.path, 0, 0.0, error=describe_os_error(exc, e.path))
                continue
            if stat.S_ISDIR(st.st_mode):
                continue  # a symlink to a folder named like a photo
            if not stat.S_ISREG(st.st_mode):
                yield FileEntry(e.path, 0, 0.0, error="not a regular file")
                continue
            yield FileEntry(e.path, st.st_size, st.st_mtime)


def plan_root(root: str, known: dict[str, Known], skip: set[str] | None = None) -> ScanPlan:
    """Compare what is on disk under root with `known` (the catalog's rows under root)."""
    plan = ScanPlan(root)
    for entry in walk_photos(root, skip):
        plan.seen.add(entry.path)
        k = known.get(entry.path)
        if entry.error:
            if k is None or k.status != "failed":
                plan.unreadable.append(entry)
            else:
                plan.unchanged += 1
            continue
        same = k is not None and k.size == entry.size and k.mtime == entry.mtime and k.status != "deleted"
        if same and not (k.status == "failed" and decoder_now_available(k.error)):
            plan.unchanged += 1  # size and mtime agree: trust it without reading (a failed file too)
            continue
        plan.to_read.append(entry)
    plan.missing = [k for path, k in known.items() if path not in plan.seen and k.status != "deleted"]
    return plan


def decoder_now_available(error: str | None) -> bool:
    """A file that failed only for want of an optional decoder is worth a retry once it is installed."""
    if error == NO_HEIF:
        return heif_available()
    if error and error.startswith(NO_RAW):
        return importlib.util.find_spec("rawpy") is not None
    return False


def root_is_offline(root: Path, has_photos_in_catalog: bool) -> str | None:
    """Why a root counts as offline, or None. An empty root that once had photos is an unmounted share,
    not a deletion of the whole library: nothing in it is deleted."""
    if not root.exists():
        return "folder does not exist"
    if not root.is_dir():
        return "not a folder"
    if not os.access(root, os.R_OK | os.X_OK):
        return "folder cannot be read"
    if has_photos_in_catalog:
        try:
            with os.scandir(root) as it:
                if next(it, None) is None:
                    return "folder is empty (an unmounted share?)"
        except OSError as exc:
            return f"folder cannot be listed ({exc.strerror})"
    return None
