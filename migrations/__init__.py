"""Alembic migrations for the catalog; `indexer.catalog.store` applies them when a data dir opens."""
