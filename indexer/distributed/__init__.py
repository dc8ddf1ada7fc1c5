"""Bulk indexing on a Ray cluster: `photoseek index --ray ADDRESS` (docs/distributed.md).

The machine with the catalog plans, deduplicates and commits, as always (indexer/writer/); the cluster
reads, decodes and embeds. Only the --ray path imports ray (stage.py, tasks.py): nothing else pays
for it, and photoseek works without it installed.
"""

from indexer.distributed.options import RayOptions

__all__ = ["RayOptions"]
