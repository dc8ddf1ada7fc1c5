"""Index a generated image as soon as its job finishes, when no other writer is running.

The indexer is the only writer (docs/design.md). If `photoseek watch` holds the writer lock, it sees the
new PNG in generated/ like any other file; otherwise searchd briefly takes the lock and indexes that
one file through the library's writer, with the same hooks (tag suggestions) as `photoseek index`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from indexer.errors import WriterLocked
from indexer.library import Library

log = logging.getLogger(__name__)


def index_generated(library: Library) -> Callable[[Path], None]:
    def on_result(path: Path) -> None:
        try:
            with library.writer_lock():
                summary = library.writer().index_files([str(path)], library.layout.generated)
        except WriterLocked:
            log.info("a watcher holds the writer lock; it will index %s", path.name)
            return
        log.info("indexed generated image %s (%d new)", path.name, summary.new)

    return on_result
