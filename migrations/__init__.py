"""Alembic migrations for the catalog; `indexer.catalog.store` applies them when a data dir opens."""

# The newest revision. Opening a catalog already at HEAD reads one row and never imports alembic (half a
# second of every command's start-up); tests/test_catalog.py checks this against alembic's own head.
HEAD = "0002"
