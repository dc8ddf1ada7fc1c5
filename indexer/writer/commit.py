"""The commit stage: one transaction per batch holding its embeddings, rows and change records.

A kill at any instant therefore loses at most the batch in flight, and the next run redoes it
(docs/design.md invariant 3). Commits run on one background thread while the next batch is
embedded, so the model (the GPU above all) does not wait for SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from indexer.catalog import embeddings, images
from indexer.catalog.images import Known
from indexer.catalog.schema import ADDED, CHANGED, FAILED, MOVED, OK, REMOVED, Image
from indexer.catalog.store import Catalog, utcnow
from indexer.decode import PhotoRead
from indexer.writer.hooks import BatchHook
from indexer.writer.summary import Summary, short_reason

log = logging.getLogger("indexer.writer")


@dataclass
class Batch:
    """A batch ready to commit, and what the commit needs to know about its root."""

    reads: list[PhotoRead]
    vectors: dict[str, np.ndarray]  # content hash -> vector, for contents embedded in this batch
    root_id: int
    # content hash -> rows that vanished from this root in this scan: a new file with that content
    # is the same photo moved (it takes over the row: same id, tags, embedding)
    claims: dict[str, list[Known]] = field(default_factory=dict)


def commit_batch(
    catalog: Catalog, batch: Batch, model_id: int | None, hooks: Sequence[BatchHook], summary: Summary
) -> None:
    """New files that no moved or deleted row claims (a first scan: nearly all of them) are inserted in
    bulk; the rest go row by row through place()."""
    now = utcnow()
    hooked: list[tuple[int, np.ndarray]] = []
    vectors, claims = batch.vectors, batch.claims
    with catalog.session() as s:
        if vectors:
            assert model_id is not None, "vectors without a model"
            embeddings.add_embeddings(s, model_id, vectors, now)
        rows = images.rows_at(s, [r.path for r in batch.reads])
        fresh = {r.content_hash for r in batch.reads if r.error is None and r.path not in rows}
        returning = images.deleted_with_content(s, [h for h in fresh if h and not claims.get(h)])
        bulk: list[PhotoRead] = []
        for r in batch.reads:
            row = rows.get(r.path)
            if r.error is not None:
                record_failure(s, row, r, batch.root_id, summary)
                continue
            if row is None and not claims.get(r.content_hash) and not returning.get(r.content_hash):
                bulk.append(r)
                continue
            row, kind = place(s, row, r, batch.root_id, claims, returning)
            summary.new += kind == ADDED
            summary.changed += kind == CHANGED
            summary.moved += kind == MOVED
            if r.content_hash in vectors:
                hooked.append((row.id, vectors[r.content_hash]))
        ids = images.add_rows(s, [{"path": r.path, **row_values(r, batch.root_id, now)} for r in bulk], now)
        summary.new += len(ids)
        for i, r in zip(ids, bulk, strict=True):
            if r.content_hash in vectors:
                hooked.append((i, vectors[r.content_hash]))
        s.flush()
        if model_id is not None:
            for hook in hooks:
                hook(s, hooked, model_id)
    summary.embedded += len(vectors)


def place(
    s: Session,
    row: Image | None,
    r: PhotoRead,
    root_id: int,
    claims: dict[str, list[Known]],
    returning: dict[str, list[Image]],
) -> tuple[Image, str | None]:
    """Write r's row: update in place, take over a moved/deleted row of the same content, or add."""
    if row is None and claims.get(r.content_hash or ""):
        row = s.get(Image, claims[r.content_hash].pop(0).id)  # type: ignore[index]  # moved within the root
        kind: str | None = MOVED
    elif row is None:
        back = returning.get(r.content_hash or "")
        row = back.pop(0) if back else None  # back again: same id, same tags
        kind = ADDED
    elif row.status != OK:
        kind = ADDED
    else:
        kind = CHANGED if row.content_hash != r.content_hash else None
    now = utcnow()
    if row is None:
        row = Image(path=r.path, root_id=root_id, indexed_at=now)
        s.add(row)
    row.path = r.path
    for name, value in row_values(r, root_id, now).items():
        setattr(row, name, value)
    s.flush()
    if kind is not None:
        images.record_change(s, row.id, kind, now)
    return row, kind


def record_failure(s: Session, row: Image | None, r: PhotoRead, root_id: int, summary: Summary) -> None:
    """Keep the reason with the file (docs/design.md invariant 4); a searchable photo leaves search."""
    assert r.error is not None
    log.warning("skipping %s: %s", r.path, r.error)
    summary.failed[short_reason(r.error)] += 1
    now = utcnow()
    if row is None:
        row = Image(path=r.path, root_id=root_id, indexed_at=now)
        s.add(row)
    elif row.status == OK:
        s.flush()
        images.record_change(s, row.id, REMOVED, now)
    row.size, row.mtime, row.content_hash = r.size, r.mtime, r.content_hash
    row.status, row.error, row.indexed_at = FAILED, r.error, now


def row_values(r: PhotoRead, root_id: int, now) -> dict:
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


class Committer:
    """Runs each batch's commit in one background thread, in order. At most one commit is in flight;
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

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()
