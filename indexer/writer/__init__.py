"""The writer, as stages: plan -> read -> embed -> commit, plus moves and removals (writer.py)."""

from indexer.writer.hooks import BatchHook
from indexer.writer.summary import Summary, short_reason
from indexer.writer.writer import Writer

__all__ = ["BatchHook", "Summary", "Writer", "short_reason"]
