"""Walking a root: which files are photos, in what order, and whether the root is there at all."""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.decode import describe_os_error
from indexer.formats import NO_HEIF, NO_RAW, PHOTO_EXTS, heif_available

# Folders that hold no photos of the user's: NAS thumbnail caches, recycle bins.
SKIP_DIRS = {"@eaDir", "#recycle", "#snapshot", ".thumbnails", "$RECYCLE.BIN", "lost+found"}


@dataclass
class FileEntry:
    path: str
    size: int
    mtime: float
    error: str | None = None  # stat failed: a broken link, a loop, unreadable


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_EXTS


def walk_photos(root: str, skip: set[str] | None = None) -> Iterator[FileEntry]:
    """Every photo file under root, in path order (str order, which is the catalog's: SQLite compares
    UTF-8 bytes, and UTF-8 keeps code point order), so a scan can be merged with the catalog's rows
    without holding either in memory. Directory symlinks are not followed (no loops, no escapes)."""
    skip = skip or set()
    # A stack of sorted folder listings. A folder sorts as "name/": "b.jpg" < "b/x.jpg" < "b0.jpg".
    stack: list[Iterator[tuple[str, os.DirEntry, bool]]] = [_sorted_listing(root)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        _, e, is_dir = item
        if is_dir:
            if e.name not in SKIP_DIRS and not e.name.startswith(".") and e.path not in skip:
                stack.append(_sorted_listing(e.path))
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


def _sorted_listing(folder: str) -> Iterator[tuple[str, os.DirEntry, bool]]:
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return iter(())  # a folder we cannot list holds nothing we can index; its parent goes on
    listing = []
    for e in entries:
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        listing.append((e.name + "/" if is_dir else e.name, e, is_dir))
    listing.sort(key=lambda t: t[0])
    return iter(listing)


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
