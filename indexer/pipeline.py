"""The writer: files in, catalog rows and embeddings out, one transaction per batch.

Decoding runs ahead in worker processes (`read_photo`), the writer embeds what it has not embedded
before (content hash + model) and commits rows, embeddings and change records together, so a crash
loses at most the batch in flight and a restart redoes it (design invariant 3).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from indexer.catalog.schema import (
    ADDED,
    CHANGED,
    DELETED,
    FAILED,
    MOVED,
    OK,
    REMOVED,
    Change,
    Embedding,
    Image,
    Root,
)
from indexer.catalog.store import Catalog, ModelIdentity, utcnow
from indexer.decode import DecodeError, PhotoRead, decode_bytes, read_photo, read_photos
from indexer.encoder import Encoder
from indexer.gpu_decode import GpuJpegDecoder, gpu_jpeg_available
from indexer.preprocess import fit_square
from indexer.scan import FileEntry, Known, plan_root, root_is_offline
from indexer.settings import Settings
from indexer.vectors import VectorIndex

log = logging.getLogger(__name__)

# hook(session, [(image id, its unit vector)], model_id): runs inside the batch's transaction for
# images whose content is new or changed (tag suggestions use it).
BatchHook = Callable[[Session, list[tuple[int, np.ndarray]], int], None]


class ModelMismatch(RuntimeError):
    pass


@dataclass
class Summary:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    embedded: int = 0
    failed: Counter = field(default_factory=Counter)  # short reason -> count
    offline: list[str] = field(default_factory=list)

    def merge(self, other: Summary) -> None:
        for name in ("new", "changed", "unchanged", "moved", "removed", "embedded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.update(other.failed)
        self.offline += other.offline

    def text(self) -> str:
        parts = [
            f"{self.new} new",
            f"{self.changed} changed",
            f"{self.unchanged} unchanged",
            f"{self.moved} moved",
            f"{self.removed} removed",
            f"{sum(self.failed.values())} failed",
        ]
        lines = [", ".join(parts) + f" ({self.embedded} embedded)"]
        lines += [f"  failed: {n} x {reason}" for reason, n in self.failed.most_common()]
        lines += [f"  offline root: {r}" for r in self.offline]
        return "\n".join(lines)


def short_reason(error: str) -> str:
    return error.split(" (", 1)[0]


def check_model(catalog: Catalog, identity: ModelIdentity, spec: str) -> int:
    """The catalog's model id for `identity`; refuse a model other than the catalog's active one."""
    active = catalog.active_model()
    if active is None:
        catalog.set_active_model(identity)
    elif active != identity:
        raise ModelMismatch(
            f"this library's embeddings were made with {active.label} ({active.dim} dimensions), "
            f"not {identity.label}. Use --model {catalog.active_spec() or active.label}, or switch the "
            f"library with `photoseek reembed --model {spec}`"
        )
    model_id = catalog.model_id(identity)
    catalog.remember_spec(model_id, spec)
    assert model_id is not None
    return model_id


class Writer:
    """The only writer of a catalog (hold indexer.lock.WriterLock while using one)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        encoder: Callable[[], Encoder],
        hooks: Sequence[BatchHook] = (),
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self._encoder_provider = encoder
        self.hooks = list(hooks)
        enc = encoder()
        self.identity = enc.identity
        self.image_size = enc.image_size
        self.model_id = check_model(catalog, self.identity, settings.model)
        self._vectors: VectorIndex | None = None
        # JPEGs decoded in batches here (nvJPEG on CUDA) rather than one by one in the workers.
        self.jpeg_decoder: GpuJpegDecoder | None = None
        if settings.gpu_decode and gpu_jpeg_available(enc.device):
            self.jpeg_decoder = GpuJpegDecoder(enc.image_size, enc.device)
        self._inflight: set[str] = set()  # content hashes embedded, their batch not committed yet

    # -- whole roots --------------------------------------------------------------------------------
    def index_roots(self, roots: Iterable[Path], progress: bool = False) -> Summary:
        total = Summary()
        for root in roots:
            total.merge(self.reconcile_root(Path(root), progress))
        self.save_vectors()
        return total

    def reconcile_root(self, root: Path, progress: bool = False) -> Summary:
        """Make the catalog match what is under `root` now."""
        summary = Summary()
        root_row = self.catalog.ensure_root(root)
        known = self._known_under(root_row.id)
        why = root_is_offline(Path(root_row.path), any(k.status == OK for k in known.values()))
        if why:
            log.warning("root %s is offline (%s); its photos are kept", root_row.path, why)
            self._set_root_online(root_row.id, False)
            summary.offline.append(f"{root_row.path}: {why}")
            return summary
        self._set_root_online(root_row.id, True)
        plan = plan_root(root_row.path, known, skip=self._own_dirs())
        summary.unchanged = plan.unchanged
        claims: dict[str, list[Known]] = {}
        for k in plan.missing:
            if k.content_hash and k.status == OK:
                claims.setdefault(k.content_hash, []).append(k)
        self._record_unreadable(plan.unreadable, root_row.id, summary)
        bar = tqdm(
            total=len(plan.to_read),
            unit="img",
            desc=Path(root_row.path).name or "/",
            disable=not progress,
            smoothing=0.1,
        )
        try:
            with _Committer() as committer:
                for batch in self._batches(self.read_many(plan.to_read)):
                    vectors = self._embed_missing(batch)
                    committer.submit(self._write_batch, batch, vectors, root_row.id, claims, summary)
                    bar.update(len(batch))
        finally:
            bar.close()
        # What no new file took over is gone: unclaimed rows of known content, and the rest.
        gone = [k.id for ks in claims.values() for k in ks]
        gone += [k.id for k in plan.missing if not (k.content_hash and k.status == OK)]
        summary.removed += self._mark_deleted(gone)
        with self.catalog.session() as s:
            s.get(Root, root_row.id).last_scan_at = utcnow()
        return summary

    def index_files(self, paths: Iterable[str], root: Path) -> Summary:
        """Index specific files under a known root (the watcher's path): new, changed or unchanged."""
        summary = Summary()
        root_row = self.catalog.ensure_root(root)
        entries: list[FileEntry] = []
        with self.catalog.session() as s:
            for p in paths:
                try:
                    st = os.stat(p)
                except OSError:
                    st = None
                row = s.scalar(select(Image).where(Image.path == p))
                if (
                    st
                    and row
                    and row.status != DELETED
                    and row.size == st.st_size
                    and row.mtime == st.st_mtime
                ):
                    summary.unchanged += 1
                    continue
                entries.append(FileEntry(p, st.st_size if st else 0, st.st_mtime if st else 0.0))
        with _Committer() as committer:
            for batch in self._batches(self.read_many(entries)):
                committer.submit(
                    self._write_batch, batch, self._embed_missing(batch), root_row.id, {}, summary
                )
        return summary

    # -- reading ------------------------------------------------------------------------------------
    def read_many(self, entries: Sequence[FileEntry]) -> Iterator[PhotoRead]:
        return read_many(entries, self.settings, self.image_size, gpu_jpeg=self.jpeg_decoder is not None)

    def _batches(self, reads: Iterator[PhotoRead]) -> Iterator[list[PhotoRead]]:
        batch: list[PhotoRead] = []
        for r in reads:
            batch.append(r)
            if len(batch) >= self.settings.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- embedding (the caller's thread) and committing (a thread of its own) ---------------------------
    def _embed_missing(self, batch: list[PhotoRead]) -> dict[str, np.ndarray]:
        """Embed the contents of this batch that have no embedding of this model yet."""
        wanted = {r.content_hash: r for r in batch if r.error is None and r.content_hash}
        if wanted:
            # The in-flight set is read before the catalog: a hash that leaves it was committed first.
            inflight = set(self._inflight)
            with self.catalog.session() as s:
                have = set(
                    s.scalars(
                        select(Embedding.content_hash).where(
                            Embedding.model_id == self.model_id, Embedding.content_hash.in_(list(wanted))
                        )
                    )
                )
            todo = [r for h, r in wanted.items() if h not in have and h not in inflight]
        else:
            todo = []
        vectors: dict[str, np.ndarray] = {}
        if todo:
            todo, pixels = self._model_inputs(todo)
            if todo:
                vecs = self._encoder_provider().encode_pixels(pixels)
                vectors = {r.content_hash: v for r, v in zip(todo, vecs, strict=True)}  # type: ignore[misc]
        failed = {r.content_hash: r.error for r in wanted.values() if r.error is not None}
        for r in batch:
            r.jpeg = None  # decoded or not needed: free the bytes before the batch waits for its commit
            if r.error is None and r.content_hash in failed:
                r.error = failed[r.content_hash]  # a duplicate of a file that failed to decode
        self._inflight.update(vectors)
        return vectors

    def _model_inputs(self, reads: list[PhotoRead]) -> tuple[list[PhotoRead], np.ndarray | torch.Tensor]:
        """The reads that decoded, and their pixels: on the GPU when the JPEGs were decoded there."""
        decoder = self.jpeg_decoder
        if decoder is not None and any(r.jpeg is not None for r in reads):
            try:
                return self._batch_decoded(reads, decoder)
            except Exception:  # a broken GPU path (driver, memory) must not stop the indexing
                log.exception("batch JPEG decoding failed; Pillow decodes the JPEGs from now on")
                self.jpeg_decoder = None
        for r in reads:
            if r.jpeg is not None and r.pixels is None and r.error is None:
                self._decode_here(r)
        kept = [r for r in reads if r.error is None]
        size = self.image_size
        return kept, np.stack([r.pixels for r in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)

    def _batch_decoded(
        self, reads: list[PhotoRead], decoder: GpuJpegDecoder
    ) -> tuple[list[PhotoRead], torch.Tensor]:
        fitted: dict[int, torch.Tensor] = {}  # read index -> its S x S x 3 model input on the device
        idx = [i for i, r in enumerate(reads) if r.jpeg is not None]
        for part in _by_pixels(idx, reads, decoder.max_pixels):  # bounds the full-size images in memory
            images = decoder.decode([reads[i].jpeg for i in part])  # type: ignore[misc]
            ok = [(i, img) for i, img in zip(part, images, strict=True) if img is not None]
            for i, img in zip(part, images, strict=True):
                if img is None:
                    self._decode_here(reads[i])  # what nvJPEG refuses, Pillow decodes (or names the problem)
            if ok:
                fitted.update(zip([i for i, _ in ok], decoder.fit([img for _, img in ok]), strict=True))
            del images, ok
        kept = [i for i, r in enumerate(reads) if r.error is None]
        size = decoder.size
        out = torch.empty((len(kept), size, size, 3), dtype=torch.uint8, device=decoder.device)
        g = [k for k, i in enumerate(kept) if i in fitted]
        if g:
            out[g] = torch.stack([fitted[kept[k]] for k in g])
        c = [k for k, i in enumerate(kept) if i not in fitted]
        if c:
            out[c] = torch.from_numpy(np.stack([reads[kept[k]].pixels for k in c])).to(decoder.device)
        return [reads[i] for i in kept], out

    def _decode_here(self, r: PhotoRead) -> None:
        assert r.jpeg is not None
        try:
            d = decode_bytes(r.jpeg, r.path, self.settings.max_megapixels, draft=self.image_size)
            r.pixels = fit_square(d.image, self.image_size)
        except DecodeError as exc:
            r.error = str(exc)

    def _write_batch(
        self,
        batch: list[PhotoRead],
        new_vectors: dict[str, np.ndarray],
        root_id: int,
        claims: dict[str, list[Known]],
        summary: Summary,
    ) -> None:
        """One transaction: the batch's new embeddings, its rows and their change records.

        New files whose content no moved or deleted row claims (a first scan: nearly all of them)
        are inserted in bulk; the rest go row by row through _place.
        """
        now = utcnow()
        hooked: list[tuple[int, np.ndarray]] = []
        try:
            with self.catalog.session() as s:
                if new_vectors:
                    s.execute(
                        insert(Embedding),
                        [
                            {
                                "model_id": self.model_id,
                                "content_hash": h,
                                "vector": v.astype(np.float32).tobytes(),
                                "created_at": now,
                            }
                            for h, v in new_vectors.items()
                        ],
                    )
                rows = _rows_at(s, [r.path for r in batch])
                fresh = {r.content_hash for r in batch if r.error is None and r.path not in rows}
                returning = _deleted_by_hash(s, [h for h in fresh if h and not claims.get(h)])
                bulk: list[PhotoRead] = []
                for r in batch:
                    row = rows.get(r.path)
                    if r.error is not None:
                        self._record_failure(s, row, r, root_id, summary)
                        continue
                    if row is None and not claims.get(r.content_hash) and not returning.get(r.content_hash):
                        bulk.append(r)
                        continue
                    row, kind = self._place(s, row, r, root_id, claims, returning)
                    summary.new += kind == ADDED
                    summary.changed += kind == CHANGED
                    summary.moved += kind == MOVED
                    if r.content_hash in new_vectors:
                        hooked.append((row.id, new_vectors[r.content_hash]))
                if bulk:
                    ids = s.scalars(
                        insert(Image).returning(Image.id, sort_by_parameter_order=True),
                        [{"path": r.path, **_row_values(r, root_id, now)} for r in bulk],
                    ).all()
                    s.execute(insert(Change), [{"image_id": i, "kind": ADDED, "at": now} for i in ids])
                    summary.new += len(ids)
                    hooked += [
                        (i, new_vectors[r.content_hash])  # type: ignore[index]
                        for i, r in zip(ids, bulk, strict=True)
                        if r.content_hash in new_vectors
                    ]
                s.flush()
                for hook in self.hooks:
                    hook(s, hooked, self.model_id)
        finally:
            self._inflight.difference_update(new_vectors)
        summary.embedded += len(new_vectors)

    def _place(
        self,
        s: Session,
        row: Image | None,
        r: PhotoRead,
        root_id: int,
        claims: dict[str, list[Known]],
        returning: dict[str, list[Image]],
    ) -> tuple[Image, str | None]:
        """Write r's row: update in place, take over a moved/deleted row of the same content, or add."""
        if row is None and r.content_hash in claims and claims[r.content_hash]:
            row = s.get(Image, claims[r.content_hash].pop(0).id)  # a file moved within the root
            kind = MOVED
        elif row is None:
            back = returning.get(r.content_hash or "")
            row = back.pop(0) if back else None  # back again: same id, same tags
            kind = ADDED
        elif row.status != OK:
            kind = ADDED
        else:
            kind = CHANGED if row.content_hash != r.content_hash else None
        if row is None:
            row = Image(path=r.path, root_id=root_id, indexed_at=utcnow())
            s.add(row)
        row.path = r.path
        for name, value in _row_values(r, root_id, utcnow()).items():
            setattr(row, name, value)
        s.flush()
        if kind is not None:
            self.catalog.record_change(s, row.id, kind)
        return row, kind

    def _record_failure(
        self, s: Session, row: Image | None, r: PhotoRead, root_id: int, summary: Summary
    ) -> None:
        assert r.error is not None
        log.warning("skipping %s: %s", r.path, r.error)
        summary.failed[short_reason(r.error)] += 1
        if row is None:
            row = Image(path=r.path, root_id=root_id, indexed_at=utcnow())
            s.add(row)
        elif row.status == OK:
            s.flush()
            self.catalog.record_change(s, row.id, REMOVED)  # it was searchable; now it is not
        row.size, row.mtime, row.content_hash = r.size, r.mtime, r.content_hash
        row.status, row.error, row.indexed_at = FAILED, r.error, utcnow()

    def _record_unreadable(self, entries: list[FileEntry], root_id: int, summary: Summary) -> None:
        if not entries:
            return
        with self.catalog.session() as s:
            rows = {
                im.path: im
                for im in s.scalars(select(Image).where(Image.path.in_([e.path for e in entries])))
            }
            for e in entries:
                self._record_failure(
                    s, rows.get(e.path), PhotoRead(e.path, 0, 0.0, error=e.error), root_id, summary
                )

    # -- removals and moves (the watcher calls these too) -------------------------------------------
    def _mark_deleted(self, ids: list[int]) -> int:
        removed = 0
        with self.catalog.session() as s:
            for image_id in ids:
                row = s.get(Image, image_id)
                if row is None or row.status == DELETED:
                    continue
                if row.status == OK:
                    self.catalog.record_change(s, row.id, REMOVED)
                    removed += 1
                row.status = DELETED
        return removed

    def remove_paths(self, paths: Iterable[str]) -> int:
        """Files or whole folders deleted: their images leave search (rows kept as DELETED)."""
        ids: list[int] = []
        with self.catalog.session() as s:
            for p in paths:
                prefix = p.rstrip(os.sep) + os.sep
                ids += s.scalars(
                    select(Image.id).where((Image.path == p) | Image.path.startswith(prefix, autoescape=True))
                )
        return self._mark_deleted(ids)

    def move_path(self, src: str, dst: str, root: Path) -> int:
        """A file or folder renamed: same ids, same embeddings, same tags; only paths change."""
        root_id = self.catalog.ensure_root(root).id
        moved = 0
        with self.catalog.session() as s:
            prefix = src.rstrip(os.sep) + os.sep
            rows = s.scalars(
                select(Image).where((Image.path == src) | Image.path.startswith(prefix, autoescape=True))
            )
            for row in list(rows):
                new_path = dst if row.path == src else dst.rstrip(os.sep) + os.sep + row.path[len(prefix) :]
                clash = s.scalar(select(Image).where(Image.path == new_path))
                if clash is not None and clash.id != row.id:
                    s.delete(clash)  # the move overwrote a file: the mover's row wins
                    s.flush()
                    self.catalog.record_change(s, clash.id, REMOVED)
                row.path, row.root_id = new_path, root_id
                if row.status == OK:
                    self.catalog.record_change(s, row.id, MOVED)
                moved += 1
        return moved

    # -- helpers ------------------------------------------------------------------------------------
    def _known_under(self, root_id: int) -> dict[str, Known]:
        with self.catalog.session() as s:
            rows = s.execute(
                select(Image.id, Image.path, Image.size, Image.mtime, Image.status)
                .add_columns(Image.content_hash, Image.error)
                .where(Image.root_id == root_id)
            ).all()
        return {r.path: Known(r.id, r.size, r.mtime, r.status, r.content_hash, r.error) for r in rows}

    def _set_root_online(self, root_id: int, online: bool) -> None:
        with self.catalog.session() as s:
            s.get(Root, root_id).online = online

    def _own_dirs(self) -> set[str]:
        d = self.settings.data_dir.resolve()
        return {str(d / "thumbs"), str(d / "vectors"), str(d / "previews"), str(d / "tags")}

    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = VectorIndex.open(
                self.catalog, self.settings.vectors_dir, self.identity, self.settings.approximate_above
            )
        return self._vectors

    def save_vectors(self) -> None:
        vi = self.vectors()
        vi.catch_up(self.catalog)
        vi.save(self.settings.vectors_dir)


def read_many(
    entries: Sequence[FileEntry], settings: Settings, image_size: int, gpu_jpeg: bool = False
) -> Iterator[PhotoRead]:
    """read_photo over entries, in worker processes when configured; bounded look-ahead.

    `gpu_jpeg`: JPEGs come back undecoded, for the writer to decode on the GPU."""
    size, mp = image_size, settings.max_megapixels
    workers = min(settings.decode_workers(), len(entries))
    if workers == 0 or len(entries) < 8:  # small jobs: spawning processes costs more
        for e in entries:
            yield read_photo(e.path, size, mp, gpu_jpeg)
        return
    # A few files per task, fewer when there are few files: every worker gets a share.
    chunk = max(1, min(8, len(entries) // (4 * workers)))
    chunks = ([e.path for e in entries[i : i + chunk]] for i in range(0, len(entries), chunk))
    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    # The initializer is os.nice itself: a function of this module would make every worker import
    # it, and with it torch and open_clip (~10 s and ~300 MB per worker) just to decode JPEGs.
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=os.nice, initargs=(settings.nice,)) as pool:
        pending: dict[Future, list[str]] = {}
        limit = max(1, settings.queue_size // chunk)
        for paths in chunks:
            pending[pool.submit(read_photos, paths, size, mp, gpu_jpeg)] = paths
            if len(pending) >= limit:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                paths = pending.pop(fut)
                try:
                    yield from fut.result()
                except Exception as exc:  # a decoder that crashed its worker process: retry one by one
                    yield from _read_alone(pool, paths, size, mp, gpu_jpeg, exc)
                nxt = next(chunks, None)
                if nxt is not None:
                    pending[pool.submit(read_photos, nxt, size, mp, gpu_jpeg)] = nxt


def _read_alone(
    pool: ProcessPoolExecutor, paths: list[str], size: int, mp: float, gpu_jpeg: bool, exc: Exception
) -> Iterator[PhotoRead]:
    """A chunk whose worker crashed: each file on its own, so only the culprit is marked."""
    if len(paths) == 1:
        yield PhotoRead(paths[0], 0, 0.0, error=f"decoder crashed ({type(exc).__name__})")
        return
    for p in paths:
        try:
            yield pool.submit(read_photo, p, size, mp, gpu_jpeg).result()
        except Exception as again:
            yield PhotoRead(p, 0, 0.0, error=f"decoder crashed ({type(again).__name__})")


def _rows_at(s: Session, paths: list[str]) -> dict[str, Image]:
    out: dict[str, Image] = {}
    for start in range(0, len(paths), 500):
        chunk = paths[start : start + 500]
        out.update({im.path: im for im in s.scalars(select(Image).where(Image.path.in_(chunk)))})
    return out


def _by_pixels(idx: list[int], reads: list[PhotoRead], limit: float) -> Iterator[list[int]]:
    """Runs of `idx` whose photos hold at most `limit` pixels together (at least one photo each)."""
    part: list[int] = []
    total = 0.0
    for i in idx:
        d = reads[i].decoded
        pixels = float(d.width * d.height) if d else 0.0
        if part and total + pixels > limit:
            yield part
            part, total = [], 0.0
        part.append(i)
        total += pixels
    if part:
        yield part


def _deleted_by_hash(s: Session, hashes: list[str]) -> dict[str, list[Image]]:
    """Deleted rows whose content is among `hashes`: a photo that comes back keeps its id and tags."""
    out: dict[str, list[Image]] = {}
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        for im in s.scalars(select(Image).where(Image.content_hash.in_(chunk), Image.status == DELETED)):
            out.setdefault(im.content_hash or "", []).append(im)
    return out


def _row_values(r: PhotoRead, root_id: int, now) -> dict:
    """An indexed image's columns (all but path and id), from what the decoding worker read."""
    d = r.decoded
    assert d is not None
    return {
        "root_id": root_id,
        "size": r.size,
        "mtime": r.mtime,
        "content_hash": r.content_hash,
        "format": d.format,
        "width": d.width,
        "height": d.height,
        "taken_at": d.taken_at,
        "camera": d.camera,
        "note": d.note,
        "caption": d.caption,
        "generated": d.generated,
        "status": OK,
        "error": None,
        "indexed_at": now,
    }


class _Committer:
    """Runs each batch's commit in one background thread, in order, while the caller embeds the next
    batch: the model (the GPU above all) no longer waits for SQLite. At most one commit is in flight;
    its error is raised at the next submit or on leaving the block, which waits for it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="photoseek-commit")
        self._pending: Future | None = None

    def submit(self, fn: Callable[..., None], *args) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Committer:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()
