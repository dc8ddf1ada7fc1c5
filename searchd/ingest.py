"""Index a generated image as soon as its job finishes, when no other writer is running.

The indexer is the only writer (design.md). If `photoseek watch` holds the writer lock, it sees the new
PNG in generated/ like any other file; otherwise searchd briefly takes the lock and indexes that one
file, so the image is searchable at once without a watcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from indexer.catalog.store import Catalog
from indexer.encoder import Encoder
from indexer.lock import WriterLock, WriterLocked
from indexer.settings import Settings

log = logging.getLogger(__name__)


def index_generated(
    settings: Settings, catalog: Catalog, encoder_provider: Callable[[], Encoder]
) -> Callable[[Path], None]:
    def on_result(path: Path) -> None:
        from indexer.pipeline import Writer

        try:
            with WriterLock(settings.data_dir):
                writer = Writer(settings, catalog, encoder_provider)
                summary = writer.index_files([str(path)], settings.generated_dir)
        except WriterLocked:
            log.info("a watcher holds the writer lock; it will index %s", path.name)
            return
        log.info("indexed generated image %s (%d new)", path.name, summary.new)

    return on_result
