"""What other features may do inside each indexing batch: the BatchHook protocol.

A hook runs inside the batch's transaction, after its rows are written, with the images whose content
was embedded in this batch. Tag suggestions are the one hook today (indexer/tags/suggest.py); the
Library attaches the same hooks to every writer it builds, so `index`, `watch` and the images searchd
generates all get them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from sqlalchemy.orm import Session


@runtime_checkable
class BatchHook(Protocol):
    def prepare(self, model_id: int) -> None:
        """Called once before the first batch that embeds: have what you need from the model in hand
        (the writer may free the text tower afterwards)."""

    def __call__(self, s: Session, embedded: list[tuple[int, np.ndarray]], model_id: int) -> None:
        """`embedded`: (image id, unit vector) of the batch's images whose content is new or changed."""
