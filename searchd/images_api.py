"""GET /api/images/ID (metadata), /api/images/ID/thumb and /api/images/ID/file (the original).

Files are served only from inside the library's roots: the catalog path is resolved (symlinks
included) and must lie under a root's resolved path, so a link that points elsewhere is refused.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from indexer.catalog import tags as tag_rows
from indexer.catalog.schema import DELETED, OK, Image
from indexer.decode import DecodeError
from searchd.params import MAX_IMAGE_ID
from searchd.results import metadata

log = logging.getLogger(__name__)

bp = Blueprint("images", __name__)

_CONTROL = re.compile("[\x00-\x1f\x7f]")
THUMB_MAX_AGE_S = 86400
FILE_MAX_AGE_S = 3600


def _state():
    return current_app.extensions["photoseek"]


def _image(image_id: int, need_ok: bool = True) -> tuple[Image, str | None]:
    """The catalog row and its root's path; 404 when unknown or deleted (or not indexed, if need_ok)."""
    if image_id > MAX_IMAGE_ID:  # the URL converter takes any digits; SQLite integers do not
        abort(404, f"no image #{image_id}")
    row, root = _state().library.catalog.image_and_root(image_id)
    if row is None or row.status == DELETED:
        abort(404, f"no image #{image_id} in the library (unknown or deleted)")
    if need_ok and row.status != OK:
        abort(404, f"image #{image_id} ({os.path.basename(row.path)}) could not be indexed: {row.error}")
    return row, root


def _inside_roots(row: Image) -> Path:
    """The file's real path, if it exists and lies inside one of the library's roots."""
    name = os.path.basename(row.path)
    try:
        real = Path(row.path).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        abort(404, f"the file of image #{row.id} ({name}) is gone from disk; the indexer will notice")
    roots = [Path(r.path).resolve() for r in _state().library.catalog.roots()]
    if not any(real.is_relative_to(root) for root in roots):
        log.warning("refusing image #%s: %s resolves to %s, outside every root", row.id, row.path, real)
        abort(
            403, f"the file of image #{row.id} ({name}) lies outside the library's folders; it is not served"
        )
    if not real.is_file():
        abort(404, f"the file of image #{row.id} ({name}) is not a regular file")
    return real


@bp.get("/api/images/<int:image_id>")
def image_metadata(image_id: int):
    row, root = _image(image_id, need_ok=False)
    with _state().library.catalog.session() as s:
        tags = tag_rows.tags_of(s, image_id)  # accepted, then suggested by score, then rejected
    return jsonify(metadata(row, root, [{"name": n, "state": st, "score": sc} for n, st, sc, _ in tags]))


@bp.get("/api/images/<int:image_id>/thumb")
def image_thumb(image_id: int):
    state = _state()
    row, _ = _image(image_id)
    thumbs, counter = state.thumbs, state.metrics.thumbnails
    if row.content_hash and row.content_hash in request.if_none_match:
        counter.labels("not_modified").inc()
        return _cache_headers(current_app.response_class(status=304), row.content_hash, THUMB_MAX_AGE_S)
    source = _inside_roots(row)
    cached = thumbs.cached(row.content_hash) if row.content_hash else None
    if cached is not None:
        path, etag = cached, row.content_hash
        counter.labels("cached").inc()
    else:
        try:
            path, etag = thumbs.make(source, row.content_hash or "0" * 64)
        except OSError as exc:
            abort(404, f"the file of image #{row.id} ({source.name}) cannot be read: {exc.strerror or exc}")
        except DecodeError as exc:
            raise DecodeError(f"cannot make a thumbnail of {source.name}: {exc}") from exc
        counter.labels("made").inc()
    response = send_file(path, mimetype="image/jpeg", conditional=False, etag=False)
    return _cache_headers(response, etag, THUMB_MAX_AGE_S)


@bp.get("/api/images/<int:image_id>/file")
def image_file(image_id: int):
    row, _ = _image(image_id)
    real = _inside_roots(row)
    # conditional: Range and If-Modified-Since for large originals; download_name sets an inline
    # Content-Disposition with the photo's own name (RFC 5987-encoded when it is not ASCII).
    response = send_file(
        real, conditional=True, download_name=_header_safe(os.path.basename(row.path)), max_age=FILE_MAX_AGE_S
    )
    response.cache_control.private = True
    return response


def _header_safe(name: str) -> str:
    """A file name as it may appear in a header: a newline or other control character (legal in a
    POSIX name) would end the header, so each becomes "_"; the file itself is served unchanged."""
    return _CONTROL.sub("_", name) or "photo"


def _cache_headers(response, etag: str, max_age: int):
    response.set_etag(etag)
    response.cache_control.max_age = max_age
    response.cache_control.private = True  # behind a token the thumbnails are not for shared caches
    return response
