"""What one request may cost, checked before the work starts.

- Lists: a query has at most MAX_QUERY_PARTS parts in q, as many like and as many minus values, at most
  MAX_TAG_FILTERS tag filters; classify at most MAX_LABELS labels of at most MAX_LABEL_CHARS; a JSON
  body at most MAX_JSON_KEYS keys and MAX_LIST_VALUES values per list; a form at most MAX_FORM_PARTS
  fields. Each is counted before anything is parsed further, encoded or looked up (40,000 labels once
  took 22 s to be refused, 3,000 minus parts 11 s).
- Bodies: JSON and other non-multipart bodies at most MAX_JSON_BYTES (only a multipart upload needs
  max_upload_mb); form fields at most MAX_FORM_FIELD_BYTES each.
- Uploaded images (search by image, classify): the header's pixel count must fit the
  `max_upload_megapixels` setting (a query needs 224 pixels a side, not the indexer's 200 MP), at most
  `upload_slots` are decoded at once (others wait up to SLOT_WAIT_S, then 503), and when the last one
  is done the freed heap goes back to the system (glibc keeps it otherwise: a 144 MP PNG once left
  searchd 500 MB larger for good).
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, request

from indexer.errors import BadInput, TooLarge, Unavailable
from indexer.models import trim_heap
from indexer.settings import Settings

log = logging.getLogger(__name__)

EXTENSION = "photoseek.budgets"
MAX_QUERY_PARTS = 16
MAX_TAG_FILTERS = 16
MAX_LABELS = 100
MAX_LABEL_CHARS = 100  # a tag's longest name (indexer/tags/vocabulary.py)
MAX_JSON_KEYS = 64
MAX_LIST_VALUES = 16
MAX_FORM_PARTS = 64
MAX_FORM_FIELD_BYTES = 256 * 1024
MAX_JSON_BYTES = 1024 * 1024
SLOT_WAIT_S = 10.0


def check_count(name: str, count: int, limit: int) -> None:
    if count > limit:
        raise BadInput(f"too many {name}: {count} (the limit is {limit}); ask for fewer at once")


class UploadBudget:
    """Pixel budget and decoding slots for images uploaded with a request."""

    def __init__(self, max_megapixels: float, slots: int) -> None:
        self.max_megapixels = max_megapixels
        self.slots = max(1, slots)
        self._free = threading.BoundedSemaphore(self.slots)
        self._busy = 0
        self._lock = threading.Lock()

    def admit(self, data: bytes, name: str) -> None:
        """Refuse (400) an image whose header declares more pixels than the budget, before decoding."""
        size = _declared_size(data)
        if size is None:
            return  # not something Pillow can read: decoding says what it is
        w, h = size
        if w * h > self.max_megapixels * 1e6:
            raise BadInput(
                f"{name[:100]} is {w}x{h} pixels ({w * h / 1e6:.0f} MP): images sent with a query may "
                f"have at most {self.max_megapixels:g} MP (setting max_upload_megapixels); a smaller copy "
                "finds the same photos"
            )

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the decoding slots; 503 when none frees up within SLOT_WAIT_S."""
        if not self._free.acquire(timeout=SLOT_WAIT_S):
            raise Unavailable(
                f"the server is decoding {self.slots} uploaded images already; try again in a few seconds"
            )
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                last = self._busy == 0
            self._free.release()
            if last:
                trim_heap()


def _declared_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def uploads() -> UploadBudget:
    return current_app.extensions[EXTENSION]


@contextmanager
def upload_slot(data: bytes, name: str) -> Iterator[None]:
    """Check an uploaded image against the budget, then hold a decoding slot while it is used."""
    budget = uploads()
    budget.admit(data, name)
    with budget.slot():
        yield


def too_large_message(max_upload_mb: float) -> str:
    """The sentence of a 413: which of the body limits the request went over."""
    length = request.content_length or 0
    if length > (current_app.config.get("MAX_CONTENT_LENGTH") or float("inf")):
        return f"the upload is larger than the limit of {max_upload_mb:g} MB (setting max_upload_mb)"
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        kib = MAX_FORM_FIELD_BYTES // 1024
        return f"the form has more than {MAX_FORM_PARTS} fields or a field over {kib} KB"
    return f"the request body is larger than {MAX_JSON_BYTES // 1024} KB; only image uploads may be larger"


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = UploadBudget(settings.max_upload_megapixels, settings.upload_slots)
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_FIELD_BYTES

    @app.before_request
    def small_bodies():
        """A JSON (or any non-multipart) body is small; only multipart uploads may use max_upload_mb."""
        length = request.content_length or 0
        if length > MAX_JSON_BYTES and request.mimetype != "multipart/form-data":
            raise TooLarge(too_large_message(settings.max_upload_mb))
