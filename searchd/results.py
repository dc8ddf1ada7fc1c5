"""How a photo looks in the API's answers (search results and image metadata)."""

from __future__ import annotations

import os
from datetime import datetime

from indexer.catalog.schema import Image
from indexer.search import Hit


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _links(image_id: int) -> dict:
    return {"thumb": f"/api/images/{image_id}/thumb", "file": f"/api/images/{image_id}/file"}


def result(row: Image | Hit, score: float | None) -> dict:
    """One search result. Names and paths are data, never markup: the page must show them as text."""
    return {
        "id": row.id,
        "score": score,
        "path": row.path,
        "name": os.path.basename(row.path),
        "folder": os.path.dirname(row.path),
        "width": row.width,
        "height": row.height,
        "taken_at": _iso(row.taken_at),
        "camera": row.camera,
        "format": row.format,
        "caption": row.caption,
        "generated": bool(row.generated),
        **_links(row.id),
    }


def metadata(row: Image, root: str | None, tags: list[dict]) -> dict:
    """Everything about one image: a result's fields plus file facts, status and tags."""
    return {
        **result(row, None),
        "size": row.size,
        "mtime": row.mtime,
        "root": root,
        "status": row.status,
        "error": row.error,
        "note": row.note,
        "content_hash": row.content_hash,
        "tags": tags,
    }
