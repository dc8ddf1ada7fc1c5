"""The catalog: SQLite (WAL) through SQLAlchemy 2, schema owned by the Alembic migrations.

It is the source of truth, embeddings included; the FAISS file is a cache derived from it.
"""

from indexer.catalog.schema import (
    Base,
    Change,
    Embedding,
    GenerationJob,
    Image,
    ImageTag,
    Model,
    Root,
    Tag,
)
from indexer.catalog.store import Catalog, open_catalog

__all__ = [
    "Base",
    "Catalog",
    "Change",
    "Embedding",
    "GenerationJob",
    "Image",
    "ImageTag",
    "Model",
    "Root",
    "Tag",
    "open_catalog",
]
