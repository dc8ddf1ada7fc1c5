"""The watcher: reconcile every root, then follow its changes until told to stop.

Threads: watchdog's observer threads only put FsEvents on a bounded queue (events.py). Everything
else happens on the one thread that calls `Watcher.run()`: it coalesces events per path (the last one
wins; moves are applied in order, as they arrive), waits for files to settle, and applies them in
batches through the library's Writer, which commits each batch in one transaction (a kill -9 loses
at most that batch, and the reconcile at the next start redoes it).

Removals are checked against the disk before they are applied: a path that is back (deleted, then
written again) is indexed instead, and nothing is removed from a root that looks unmounted.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.catalog import images
from indexer.catalog.schema import DELETED, OK
from indexer.catalog.store import utcnow
from indexer.library import Library
from indexer.scan import root_is_offline, walk_photos
from indexer.watch.events import GONE, MOVED, TOUCHED, EventQueue, FsEvent, is_watched_file
from indexer.watch.observer import POLLING, Observers
from indexer.watch.settle import SettleTracker
from indexer.watch.status import StatusFile, WatchStatus

if TYPE_CHECKING:
    from indexer.distributed import RayOptions

log = logging.getLogger("indexer.watch")

ROOT_CHECK_S = 2.0  # how often roots are checked for going offline / coming back
RETRY_S = 30.0
# A full reconcile of every root this often: the safety net under months of events (a missed
# inotify event, an inode that polling mistook for a move). It costs a walk and a stat per photo.
RECONCILE_EVERY_S = 24 * 3600.0  # after an unexpected error, reconcile the root this much later
MAX_TICK_S = 0.5  # the loop wakes at least this often (signals, status, due files)


class Stopping(Exception):
    """Raised between photos when a stop was requested; the committed batches stay committed."""


@dataclass
class RootState:
    path: str
    id: int
    online: bool = False
    why: str = ""  # why offline, or why polled
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder we watch
    reconciled_at: float = 0.0  # time.monotonic() of the last reconcile


class Watcher:
    def __init__(self, library: Library, roots: Sequence[Path], ray: RayOptions | None = None) -> None:
        """`ray`: the first scan reads and embeds on that Ray cluster; the changes after it, here."""
        settings = library.settings
        self.library = library
        self.settings = settings
        self.catalog = library.catalog
        self.events = EventQueue()
        self.settle = SettleTracker(settings.settle_s)
        self.gone: dict[str, tuple[str, float, bool]] = {}  # path -> (root, due, is_dir)
        self._stop_requested = False
        status = WatchStatus(pid=os.getpid(), started_at=time.time())
        self.status = StatusFile(library.layout.watch_status, status)
        self.writer = library.writer(images_only=True, between_photos=self._between_photos, ray=ray)
        skip = library.layout.not_photos()
        self.observers = Observers(self.events, settings.poll_interval_s, settings.force_polling, skip)
        self.skip = skip
        self.roots: dict[str, RootState] = {}
        for r in roots:
            row = self.catalog.ensure_root(Path(r).expanduser())
            self.roots[row.path] = RootState(row.path, row.id)
        self._retry_at: dict[str, float] = {}
        self.reconciles: Counter = Counter()  # why -> how often (status and tests read it)
        self._next_root_check = 0.0
        self._dirty = False  # changes not yet in the saved vector index
        self._saved_at = time.monotonic()

    # -- lifecycle ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask run() to finish the batch in hand, save and return (safe from a signal handler)."""
        self._stop_requested = True

    def _between_photos(self) -> None:
        if self._stop_requested:
            raise Stopping  # the batch being gathered is not committed: redone at the next start
        self._pulse()

    def run(self, scan_only: bool = False) -> None:
        try:
            for root in self.roots.values():
                if self._stop_requested:
                    break
                try:
                    self._start_root(root, watch=not scan_only)
                except Stopping:
                    raise
                except Exception:  # one bad root must not keep the others unwatched
                    log.exception("could not start %s; retrying in %.0fs", root.path, RETRY_S)
                    self._retry_at[root.path] = time.monotonic() + RETRY_S
            self.writer.scale_in()  # a Ray cluster, if any, did the first scan; events are indexed here
            self._set_state("watching")
            while not self._stop_requested and not scan_only:
                self._cycle()
        except Stopping:
            pass
        finally:
            self.writer.scale_in()
            self._shutdown()

    def _shutdown(self) -> None:
        self._set_state("stopping")
        self.observers.stop()
        try:
            if self.settings.vector_save_interval_s > 0:
                self.writer.save_vectors()
        finally:
            self.catalog.set_root_observer([root.id for root in self.roots.values()], None)
            self.status.remove()
        log.info("stopped")

    # -- roots --------------------------------------------------------------------------------------
    def _start_root(self, root: RootState, watch: bool = True) -> None:
        """Watch first, then reconcile: a change made during the scan is seen by one or the other."""
        why = root_is_offline(Path(root.path), self._has_photos(root))
        if why:
            self._go_offline(root, why)
            return
        if watch:
            try:
                rw = self.observers.watch(root.path)
            except OSError as exc:
                self._go_offline(root, f"cannot be watched ({exc.strerror or exc})")
                return
            root.why, root.inode = rw.why, _inode(root.path)
            self.catalog.set_root_observer([root.id], rw.kind)
        root.online = True
        self._reconcile(root, "start" if watch else "scan")

    def _reconcile(self, root: RootState, why: str) -> None:
        self._set_state(f"scanning {root.path}")
        log.info("reconciling %s (%s)", root.path, why)
        self.reconciles[why] += 1
        root.reconciled_at = time.monotonic()
        summary = self.writer.reconcile_root(Path(root.path))
        self._dirty = True
        if summary.offline:
            self._go_offline(root, summary.offline[0].split(": ", 1)[-1])
        else:
            log.info("%s: %s", root.path, summary.text().replace("\n", "; "))
            self.status.note(f"reconciled {root.path}")
        self._set_state("watching")

    def _go_offline(self, root: RootState, why: str) -> None:
        if root.online or root.why != why:
            log.warning("root %s is offline (%s); its photos are kept until it is back", root.path, why)
        root.online, root.why = False, why
        self.observers.unwatch(root.path)
        self.settle.forget_root(root.path)
        self.gone = {p: g for p, g in self.gone.items() if g[0] != root.path}
        self.catalog.set_root_offline(root.id)
        self.status.note(f"root offline: {root.path} ({why})")

    def _check_roots(self) -> None:
        for root in self.roots.values():
            why = root_is_offline(Path(root.path), self._has_photos(root))
            if why:
                if root.online:
                    self._go_offline(root, why)
                continue
            if not root.online:
                log.info("root %s is back", root.path)
                self._start_root(root)
            elif not self.observers.alive(root.path) or _inode(root.path) != root.inode:
                # The folder was replaced (or its watch died) between two checks.
                log.info("root %s was replaced; watching it again", root.path)
                self._start_root(root)

    def _has_photos(self, root: RootState) -> bool:
        with self.catalog.session() as s:
            return images.has_searchable(s, root.id)

    # -- the loop -----------------------------------------------------------------------------------
    def _cycle(self) -> None:
        now = time.monotonic()
        next_gone = min((g[1] for g in self.gone.values()), default=None)
        due = [d for d in (self.settle.next_due(), next_gone) if d is not None]
        timeout = min([MAX_TICK_S] + [max(d - now, 0.01) for d in due])
        events = self.events.drain(timeout)
        try:
            for ev in events:
                self._take(ev)
            for path in self.events.take_overflowed():
                root = self.roots.get(path)
                if root is not None and root.online:
                    self._reconcile(root, "too many events at once")
            now = time.monotonic()
            for path, at in list(self._retry_at.items()):
                if now >= at and self.roots[path].online:
                    del self._retry_at[path]
                    self._reconcile(self.roots[path], "retry after an error")
            for root in self.roots.values():
                if root.online and now - root.reconciled_at >= RECONCILE_EVERY_S:
                    self._reconcile(root, "daily check")
            if now >= self._next_root_check:
                self._next_root_check = now + ROOT_CHECK_S
                self._check_roots()
            self._apply_gone()
            self._apply_ready()
            self._housekeeping()
        except Stopping:
            raise
        except Exception:  # never take the daemon down: log it, and let a reconcile repair it later
            log.exception("unexpected error; the affected roots are reconciled in %.0fs", RETRY_S)
            for root in self.roots.values():
                self._retry_at.setdefault(root.path, time.monotonic() + RETRY_S)

    def _take(self, ev: FsEvent) -> None:
        root = self.roots.get(ev.root)
        if root is None or not root.online:
            return  # an offline root is reconciled when it is back
        if ev.kind == TOUCHED:
            self.gone.pop(ev.path, None)
            if ev.is_dir:  # a folder created or moved in: its files raise no events of their own
                for e in walk_photos(ev.path, self.skip):
                    self.settle.touch(e.path, root.path)
            else:
                self.settle.touch(ev.path, root.path)
        elif ev.kind == GONE:
            self.settle.forget(ev.path, ev.is_dir)
            self.gone[ev.path] = (root.path, time.monotonic() + self.settings.settle_s, ev.is_dir)
        elif ev.kind == MOVED:
            self._apply_move(root, ev)

    def _apply_move(self, root: RootState, ev: FsEvent) -> None:
        rw = self.observers.watches.get(root.path)
        if rw is not None and rw.kind == POLLING and not self._plausible_move(ev):
            # Polling pairs a vanished path with a new one by inode, and inodes are reused: a folder
            # deleted and a file created a moment later look like a move. Take it as delete + create.
            self._take(FsEvent(GONE, root.path, ev.path, is_dir=ev.is_dir))
            if os.path.lexists(ev.dest):
                self._take(FsEvent(TOUCHED, root.path, ev.dest, is_dir=os.path.isdir(ev.dest)))
            return
        self.settle.rename(ev.path, ev.dest, ev.is_dir)
        if ev.is_dir:  # a file deleted just before its folder moved: its row moves, so must the removal
            prefix, new_prefix = ev.path.rstrip(os.sep) + os.sep, ev.dest.rstrip(os.sep) + os.sep
            for p in [p for p in self.gone if p.startswith(prefix)]:
                self.gone[new_prefix + p[len(prefix) :]] = self.gone.pop(p)
        n = self.writer.move_path(ev.path, ev.dest, Path(root.path))
        if n:
            self._dirty = True
            what = f"moved {ev.path} -> {ev.dest}" + (f" ({n} files)" if ev.is_dir else "")
            log.info("%s", what)
            self.status.note(what)
        # What the catalog did not know under the new name (never indexed, or changed) settles and
        # is indexed; what moved with its row is unchanged and costs one stat.
        if ev.is_dir:
            known = self._known_under(ev.dest)
            for e in walk_photos(ev.dest, self.skip):
                if known.get(e.path) != (e.size, e.mtime):
                    self.settle.touch(e.path, root.path)
        elif is_watched_file(root.path, ev.dest, self.skip):
            self.settle.touch(ev.dest, root.path)

    def _plausible_move(self, ev: FsEvent) -> bool:
        if os.path.lexists(ev.path) or not os.path.lexists(ev.dest):
            return False
        if os.path.isdir(ev.dest) != ev.is_dir:
            return False
        return ev.is_dir or not self._known_under(ev.path)  # a file cannot carry a folder's photos

    def _apply_gone(self) -> None:
        now = time.monotonic()
        by_root: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for path, (root_path, due, is_dir) in list(self.gone.items()):
            if due <= now:
                del self.gone[path]
                by_root[root_path].append((path, is_dir))
        for root_path, items in by_root.items():
            root = self.roots[root_path]
            why = root_is_offline(Path(root.path), self._has_photos(root))
            if why:  # everything vanished at once: an unmount, not a deletion
                self._go_offline(root, why)
                continue
            doomed: list[str] = []
            for path, _ in items:
                if not os.path.lexists(path):
                    doomed.append(path)
                elif os.path.isdir(path):  # a folder deleted and made again: drop what is not back
                    doomed += [p for p in self._known_under(path) if not os.path.lexists(p)]
                elif is_watched_file(root.path, path, self.skip):
                    self.settle.touch(path, root.path)  # back already: index what is there now
            if doomed:
                self._remove(doomed)

    def _remove(self, paths: list[str]) -> None:
        with self.catalog.session() as s:
            searchable = images.paths_at_or_under(s, paths, OK)
        if self.writer.remove_paths(paths):
            self._dirty = True
        for p in sorted(searchable):
            log.info("removed %s", p)
            self.status.note(f"removed {p}")

    def _apply_ready(self) -> None:
        ready, vanished = self.settle.take_ready(limit=max(self.settings.batch_size, 1) * 4)
        now = time.monotonic()
        for root_path, path in vanished:  # gone before it settled; whatever the catalog had goes too
            self.gone.setdefault(path, (root_path, now, False))
        by_root: dict[str, list[str]] = defaultdict(list)
        for root_path, path in ready:
            by_root[root_path].append(path)
        for root_path, paths in by_root.items():
            root = self.roots[root_path]
            if not root.online:
                continue
            try:
                self._index(root, paths)
            except Stopping:
                raise
            except Exception:
                log.exception("indexing %d files under %s failed", len(paths), root_path)
                self._retry_at.setdefault(root_path, time.monotonic() + RETRY_S)

    def _index(self, root: RootState, paths: list[str]) -> None:
        started = utcnow()
        self._set_state("indexing")
        summary = self.writer.index_files(paths, Path(root.path))
        self._set_state("watching")
        if summary.new or summary.changed or summary.moved or summary.failed:
            self._dirty = True
        with self.catalog.session() as s:
            rows = images.statuses_at(s, paths)
        for path, status, indexed_at in sorted(rows):
            if status == OK and indexed_at >= started:
                log.info("indexed %s", path)
                self.status.note(f"indexed {path}")
            elif status == DELETED:
                pass  # removed meanwhile

    def _housekeeping(self) -> None:
        idle = not len(self.settle) and not self.gone and not len(self.events)
        if idle:
            self.library.models.unload_idle()
        now = time.monotonic()
        # vector_save_interval_s <= 0: the watcher keeps no vector index at all (it costs 4 bytes a
        # dimension a photo, 1 GB for 500,000 photos at 512-d); searchd builds it from the catalog.
        interval = self.settings.vector_save_interval_s
        if interval > 0 and self._dirty and now - self._saved_at >= interval:
            self.writer.save_vectors()
            self._dirty, self._saved_at = False, now
        self._pulse()

    # -- helpers ------------------------------------------------------------------------------------
    def _known_under(self, folder: str) -> dict[str, tuple[int, float]]:
        with self.catalog.session() as s:
            return images.files_under(s, folder)

    def _set_state(self, state: str) -> None:
        if self.status.status.state != state:
            self.status.status.state = state
            self._pulse(force=state.startswith(("scanning", "stopping")))

    def _pulse(self, force: bool = False) -> None:
        st = self.status.status
        st.queue, st.waiting = len(self.events), len(self.settle) + len(self.gone)
        st.model_loaded = self.library.loaded_encoder() is not None
        st.roots = {
            r.path: {
                "online": r.online,
                "observer": (w.kind if (w := self.observers.watches.get(r.path)) else None),
                "why": r.why,
            }
            for r in self.roots.values()
        }
        self.status.write(force)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
