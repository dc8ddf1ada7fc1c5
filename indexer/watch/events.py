"""Filesystem events in, a bounded queue of small facts out.

The watchdog callback runs on the observer's thread and must never block or touch the catalog: it
filters out what photoseek does not index, turns the event into an FsEvent and puts it on a bounded
queue. When the queue is full the event is dropped and its root is flagged: the writer then
reconciles that root from the disk instead (a full walk is always correct, just slower).
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from indexer.scan import SKIP_DIRS, is_photo_name

TOUCHED = "touched"  # created or written: index it once it settles (a folder: walk it)
GONE = "gone"  # deleted, or moved out of sight: leaves search once it is really gone
MOVED = "moved"  # renamed or moved within the root: keeps its id, embedding and tags

# Events waiting for the writer. ~200 bytes each: 20k is a few MB, and a burst bigger than this is
# cheaper to answer with one reconcile of the root than event by event.
EVENT_QUEUE_MAX = 20_000


@dataclass(frozen=True)
class FsEvent:
    kind: str
    root: str
    path: str
    dest: str = ""  # MOVED only
    is_dir: bool = False


class EventQueue:
    """Bounded, never blocks its producers; overflow turns into "reconcile this root"."""

    def __init__(self, maxsize: int = EVENT_QUEUE_MAX) -> None:
        self._q: queue.Queue[FsEvent] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._overflowed: set[str] = set()

    def put(self, event: FsEvent) -> None:
        try:
            self._q.put_nowait(event)
        except queue.Full:
            self.flag_overflow(event.root)

    def flag_overflow(self, root: str) -> None:
        with self._lock:
            self._overflowed.add(root)

    def take_overflowed(self) -> set[str]:
        with self._lock:
            out, self._overflowed = self._overflowed, set()
        return out

    def drain(self, timeout: float, limit: int = 5000) -> list[FsEvent]:
        """Wait up to `timeout` for one event, then take whatever else is already there."""
        try:
            out = [self._q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(out) < limit:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out

    def __len__(self) -> int:
        return self._q.qsize()


def _visible_dirs(root: str, path: str, skip: set[str]) -> bool:
    """False if any folder between root and path is one walk_photos would not enter."""
    rel = os.path.relpath(path, root)
    if rel.startswith(".."):
        return False
    if rel == ".":
        return True
    parts = rel.split(os.sep)
    prefix = root
    for part in parts[:-1]:
        prefix = os.path.join(prefix, part)
        if part in SKIP_DIRS or part.startswith(".") or prefix in skip:
            return False
    return True


def is_watched_file(root: str, path: str, skip: set[str]) -> bool:
    """Would a scan of root index this path (as a file)?"""
    return is_photo_name(os.path.basename(path)) and _visible_dirs(root, path, skip)


def is_watched_dir(root: str, path: str, skip: set[str]) -> bool:
    name = os.path.basename(path)
    return (
        _visible_dirs(root, path, skip)
        and name not in SKIP_DIRS
        and not name.startswith(".")
        and path not in skip
    )


class RootEventHandler(FileSystemEventHandler):
    """Translates one root's watchdog events into FsEvents (runs on the observer's thread)."""

    def __init__(self, root: str, events: EventQueue, skip: set[str] | None = None) -> None:
        self.root = root
        self.events = events
        self.skip = skip or set()
        # watchdog follows a folder move with one move event per file inside it; the writer moves
        # the whole folder at once, so those are noise.
        self._last_dir_move: tuple[str, str] | None = None

    def _watched(self, path: str, is_dir: bool) -> bool:
        if is_dir:
            return is_watched_dir(self.root, path, self.skip)
        return is_watched_file(self.root, path, self.skip)

    def dispatch(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        is_dir = event.is_directory
        put = self.events.put
        if isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent, DirCreatedEvent)):
            if src != self.root and self._watched(src, is_dir):
                put(FsEvent(TOUCHED, self.root, src, is_dir=is_dir))
        elif isinstance(event, (FileDeletedEvent, DirDeletedEvent)):
            # Deleting a skipped folder may still matter (rows can exist from before a rename).
            put(FsEvent(GONE, self.root, src, is_dir=is_dir))
        elif isinstance(event, (FileMovedEvent, DirMovedEvent)):
            self._moved(src, os.fsdecode(event.dest_path), is_dir)

    def _moved(self, src: str, dst: str, is_dir: bool) -> None:
        if not is_dir and self._last_dir_move is not None:
            old, new = self._last_dir_move
            if src.startswith(old + os.sep) and dst == new + src[len(old) :]:
                return  # part of the folder move already queued
        if is_dir:
            self._last_dir_move = (src, dst)
        was, now = self._watched(src, is_dir), self._watched(dst, is_dir) if dst else False
        put = self.events.put
        if now and was:
            put(FsEvent(MOVED, self.root, src, dst, is_dir))
        elif now:  # e.g. a copy tool's "photo.jpg.part" renamed to "photo.jpg"
            put(FsEvent(TOUCHED, self.root, dst, is_dir=is_dir))
        else:  # moved out of sight: into a hidden folder, a recycle bin, a non-photo name
            put(FsEvent(GONE, self.root, src, is_dir=is_dir))
