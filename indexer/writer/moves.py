"""Removals and moves: paths change, photos keep their ids, tags and embeddings (invariant 6).

Deletes are soft: a removed photo's row stays as DELETED, so a file that comes back (a move seen as
delete + create, a restored backup) gets its old id and tags again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from indexer.catalog import images
from indexer.catalog.schema import MOVED, OK, REMOVED
from indexer.catalog.store import Catalog, utcnow


def mark_deleted(catalog: Catalog, ids: list[int]) -> int:
    """Rows out of search; how many of them were searchable."""
    if not ids:
        return 0
    with catalog.session() as s:
        return images.mark_deleted(s, ids, utcnow())


def remove_paths(catalog: Catalog, paths: Iterable[str]) -> int:
    """Files or whole folders deleted: their images leave search."""
    with catalog.session() as s:
        ids = images.ids_at_or_under(s, paths)
    return mark_deleted(catalog, ids)


def move_path(catalog: Catalog, src: str, dst: str, root_id: int) -> int:
    """A file or folder renamed: only paths change. Returns how many rows moved."""
    moved = 0
    prefix = src.rstrip(os.sep) + os.sep
    with catalog.session() as s:
        for row in images.rows_at_or_under(s, src):
            new_path = dst if row.path == src else dst.rstrip(os.sep) + os.sep + row.path[len(prefix) :]
            now = utcnow()
            clash = images.row_at(s, new_path)
            if clash is not None and clash.id != row.id:
                s.delete(clash)  # the move overwrote a file: the mover's row wins
                s.flush()
                images.record_change(s, clash.id, REMOVED, now)
            row.path, row.root_id = new_path, root_id
            if row.status == OK:
                images.record_change(s, row.id, MOVED, now)
            moved += 1
    return moved
