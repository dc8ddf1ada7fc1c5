"""One error vocabulary for the whole of photoseek.

Every failure a person can act on is a PhotoseekError subclass whose message says what to do next.
Each kind carries its HTTP status and its exit code; searchd/errors.py maps them to responses and
indexer/cli.py to exit codes, each in one place. Anything else that escapes is a bug (HTTP 500,
exit 1 with a traceback).

Domain errors keep their familiar names (QueryError, ModelMismatch, ...) but are declared here, so a
reader imports them without importing the module that raises them (the writer, torch, ...).
"""

from __future__ import annotations


class PhotoseekError(Exception):
    """A failure with a sentence for the user."""

    http_status = 500
    exit_code = 1


# -- the kinds ---------------------------------------------------------------------------------------
class BadInput(PhotoseekError, ValueError):
    """The request or the command line is wrong; the message names what and how to fix it."""

    http_status = 400
    exit_code = 2


class NotFound(PhotoseekError, LookupError):
    http_status = 404
    exit_code = 2


class Conflict(PhotoseekError):
    """The library is not in a state that allows this (another model, another writer, a finished job)."""

    http_status = 409
    exit_code = 2


class TooLarge(BadInput):
    http_status = 413


class TooMany(PhotoseekError):
    """A queue or rate limit is full; try again later."""

    http_status = 429
    exit_code = 2


class Unavailable(PhotoseekError):
    """Something photoseek needs is not here (model weights, a decoder, a share)."""

    http_status = 503
    exit_code = 2


# -- the domain errors -------------------------------------------------------------------------------
class QueryError(BadInput):
    """The query cannot be used; the message says why."""


class DecodeError(BadInput):
    """A photo (or an uploaded image) cannot be decoded; the message is the reason recorded for it."""


class ModelMismatch(Conflict):
    """The library's embeddings were made by another model than the one asked for."""


class WriterLocked(Conflict):
    """Another indexer holds the data dir's writer lock."""


class ModelUnavailable(Unavailable):
    """The model cannot be loaded here; the message says how to get it."""


class UnknownImage(NotFound):
    def __init__(self, image_id: int, why: str = "") -> None:
        super().__init__(why or f"there is no image #{image_id} in the catalog")
        self.image_id = image_id


class NoLibrary(Conflict):
    """The data dir holds no catalog (or no photos) yet: index a folder first."""
