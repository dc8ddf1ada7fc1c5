"""The writer: files in, catalog rows and embeddings out, through four stages read one at a time:

    plan (plan.py)  ->  read (read.py)  ->  embed (embed.py)  ->  commit (commit.py)
    plus removals and moves (moves.py), which the watcher applies between them.

Only Library.writer() builds one (indexer/library.py): every writer gets the same hooks and the same
model checks. The model is loaded when the first photo needs embedding, not before: an unchanged
library is checked in the time it takes to walk it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from indexer.catalog import images
from indexer.catalog.schema import DELETED, OK
from indexer.catalog.store import Catalog
from indexer.decode import PhotoRead
from indexer.layout import DataDir
from indexer.scan import FileEntry, root_is_offline
from indexer.settings import Settings
from indexer.vectors import VectorIndex
from indexer.writer import moves
from indexer.writer.commit import Batch, Committer, commit_batch, record_failure
from indexer.writer.embed import Embedder
from indexer.writer.hooks import BatchHook
from indexer.writer.plan import plan_root
from indexer.writer.read import read_many
from indexer.writer.summary import Summary

if TYPE_CHECKING:
    from indexer.distributed.stage import RayStage
    from indexer.encoder import Encoder

log = logging.getLogger("indexer.writer")


class Writer:
    """The only writer of a catalog (hold the data dir's WriterLock while using one)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        encoder: Callable[[], Encoder],
        resolve_model: Callable[[], int],
        hooks: Sequence[BatchHook] = (),
        after_prepare: Callable[[], None] | None = None,
        between_photos: Callable[[], None] | None = None,
        cluster: RayStage | None = None,
    ) -> None:
        """`resolve_model`: the catalog's id of the model, checked against the library (called once,
        when the first photo needs embedding). `after_prepare`: called once the hooks have what they
        need from the model (the Library frees the text tower of a process that only embeds images).
        `between_photos`: called after each photo read; it may raise to stop (the batch in hand is then
        not committed). `cluster`: whole roots are read and embedded on a Ray cluster instead of here
        (indexer/distributed/); plan, dedup and commit stay here, until scale_in()."""
        self.settings = settings
        self.catalog = catalog
        self.layout: DataDir = settings.layout
        self.hooks = list(hooks)
        self._encoder = encoder
        self._resolve_model = resolve_model
        self._after_prepare = after_prepare
        self._between_photos = between_photos
        self._model_id: int | None = None
        self.embedder = Embedder(settings, catalog, encoder, self.model_id)
        self.cluster = cluster
        self.changed = False  # this writer committed something: the saved vector index is stale
        self._vectors: VectorIndex | None = None

    def model_id(self) -> int:
        """Resolve the model once: check it, let the hooks prepare, free what only they needed."""
        if self._model_id is None:
            model_id = self._resolve_model()
            for hook in self.hooks:
                hook.prepare(model_id)
            if self._after_prepare is not None:
                self._after_prepare()
            self._model_id = model_id
        return self._model_id

    # -- whole roots --------------------------------------------------------------------------------
    def index_roots(self, roots: Iterable[Path], progress: bool = False) -> Summary:
        total = Summary()
        try:
            for root in roots:
                total.merge(self.reconcile_root(Path(root), progress))
        finally:
            self.scale_in()
        self.save_vectors()
        return total

    def scale_in(self) -> None:
        """Let the Ray cluster go (its actors and connection): from now on this process reads and embeds."""
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.close()

    def reconcile_root(self, root: Path, progress: bool = False) -> Summary:
        """Make the catalog match what is under `root` now."""
        summary = Summary()
        root_row = self.catalog.ensure_root(root)
        with self.catalog.session() as s:
            has_photos = images.has_searchable(s, root_row.id)
        why = root_is_offline(Path(root_row.path), has_photos)
        if why:
            log.warning("root %s is offline (%s); its photos are kept", root_row.path, why)
            self.catalog.set_root_online(root_row.id, False)
            summary.offline.append(f"{root_row.path}: {why}")
            return summary
        self.catalog.set_root_online(root_row.id, True)
        skip = self.layout.not_photos()
        with plan_root(self.catalog, root_row.id, root_row.path, self.layout.root, skip) as plan:
            summary.unchanged = plan.unchanged
            claims = plan.claims()
            self._record_unreadable(plan.unreadable, root_row.id, summary)
            name = Path(root_row.path).name or "/"
            with tqdm(total=plan.to_read, unit="img", desc=name, disable=not progress, smoothing=0.1) as bar:
                self._index(plan.entries(), plan.to_read, root_row.id, claims, summary, bar, self.cluster)
            # What no new file took over is gone: unclaimed rows of known content, and the rest.
            gone = [k.id for ks in claims.values() for k in ks]
            gone += [k.id for k in plan.missing if not (k.content_hash and k.status == OK)]
        summary.removed += moves.mark_deleted(self.catalog, gone)
        self.changed |= bool(summary.removed)
        self.catalog.mark_scanned(root_row.id)
        return summary

    def index_files(self, paths: Iterable[str], root: Path) -> Summary:
        """Index specific files under a known root (the watcher's path): new, changed or unchanged."""
        summary = Summary()
        root_id = self.catalog.ensure_root(root).id
        paths = list(dict.fromkeys(paths))
        with self.catalog.session() as s:
            rows = images.rows_at(s, paths)
        entries: list[FileEntry] = []
        for p in paths:
            try:
                st: os.stat_result | None = os.stat(p)
            except OSError:
                st = None  # gone or unreadable: reading it records why
            row = rows.get(p)
            if st and row and row.status != DELETED and (row.size, row.mtime) == (st.st_size, st.st_mtime):
                summary.unchanged += 1
                continue
            entries.append(FileEntry(p, st.st_size if st else 0, st.st_mtime if st else 0.0))
        self._index(iter(entries), len(entries), root_id, {}, summary)
        return summary

    def _index(
        self,
        entries: Iterator[FileEntry],
        count: int,
        root_id: int,
        claims: dict,
        summary: Summary,
        progress: tqdm | None = None,
        cluster: RayStage | None = None,
    ) -> None:
        if not count:
            return
        with Committer() as committer:
            for reads_batch, vectors in self._embedded(entries, count, cluster, progress):
                batch = Batch(reads_batch, vectors, root_id, claims)
                committer.submit(self._commit, batch, summary)
                if progress is not None:
                    progress.update(len(reads_batch))

    def _embedded(
        self, entries: Iterator[FileEntry], count: int, cluster: RayStage | None, progress: tqdm | None
    ) -> Iterator[tuple[list[PhotoRead], dict]]:
        """read + embed, batch by batch: in this process, or on the Ray cluster (which gets only the
        contents the Embedder has not embedded and no earlier batch has in flight)."""
        embedder = self.embedder
        if cluster is not None:
            enc = self._encoder()
            batches = cluster.embedded(entries, enc.identity, enc.image_size, embedder.reserve, progress)
            for reads_batch, vectors in batches:
                for _ in reads_batch:
                    if self._between_photos is not None:
                        self._between_photos()
                yield reads_batch, vectors
            return
        gpu_jpeg = embedder.gpu_jpeg()
        reads = read_many(entries, count, self.settings, embedder.image_size, gpu_jpeg)
        for reads_batch in self._batches(reads):
            yield reads_batch, embedder.embed(reads_batch)

    def _commit(self, batch: Batch, summary: Summary) -> None:
        try:
            commit_batch(self.catalog, batch, self._model_id, self.hooks, summary)
            self.changed = True
        finally:
            self.embedder.committed(batch.vectors)

    def _batches(self, reads: Iterator[PhotoRead]) -> Iterator[list[PhotoRead]]:
        batch: list[PhotoRead] = []
        for r in reads:
            if self._between_photos is not None:
                self._between_photos()
            batch.append(r)
            if len(batch) >= self.settings.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _record_unreadable(self, entries: list[FileEntry], root_id: int, summary: Summary) -> None:
        if not entries:
            return
        with self.catalog.session() as s:
            rows = images.rows_at(s, [e.path for e in entries])
            for e in entries:
                read = PhotoRead(e.path, 0, 0.0, error=e.error)
                record_failure(s, rows.get(e.path), read, root_id, summary)
        self.changed = True

    # -- removals and moves (the watcher calls these) -----------------------------------------------
    def remove_paths(self, paths: Iterable[str]) -> int:
        """Files or whole folders deleted: their images leave search (rows kept as DELETED)."""
        removed = moves.remove_paths(self.catalog, paths)
        self.changed |= bool(removed)
        return removed

    def move_path(self, src: str, dst: str, root: Path) -> int:
        """A file or folder renamed: same ids, same embeddings, same tags; only paths change."""
        moved = moves.move_path(self.catalog, src, dst, self.catalog.ensure_root(root).id)
        self.changed |= bool(moved)
        return moved

    # -- the vector index ---------------------------------------------------------------------------
    def vectors(self) -> VectorIndex | None:
        """The library's vector index, caught up; None while the library has no model yet."""
        if self._vectors is None:
            identity = self.catalog.active_model()
            if identity is None:
                return None
            self._vectors = VectorIndex.open(
                self.catalog,
                self.layout.vectors,
                identity,
                self.settings.approximate_above,
                self.settings.ondisk_above,
            )
        return self._vectors

    def save_vectors(self) -> None:
        """Persist the vector index if this writer changed the catalog (or none is saved yet)."""
        identity = self.catalog.active_model()
        if identity is None:
            return
        saved = VectorIndex.paths(self.layout.vectors, identity)[1].exists()  # the meta: every kind has one
        if saved and not self.changed:
            return  # readers catch up from the change sequence anyway; a rewrite would only cost
        vi = self.vectors()
        assert vi is not None
        vi.catch_up(self.catalog)
        vi.save(self.layout.vectors)
        self.changed = False
