"""Apply (and check) the Alembic migrations in the `migrations` package.

A library is born here: the first open of a data dir creates every table. That must happen all at
once or not at all, and only once when two processes open a new data dir together (`serve` and
`watch` started side by side). So a migration runs in one SQLite transaction begun with BEGIN
EXCLUSIVE, on a connection of its own:

- Python's sqlite3 driver opens no transaction for DDL, so each CREATE TABLE used to commit on its
  own; a kill between two of them left a catalog that every later open refused ("table changes
  already exists"). Here the driver is told to stay out of transactions (isolation_level None) and the
  transaction is begun explicitly, SQLAlchemy's documented recipe for transactional DDL on pysqlite:
  a kill at any write leaves the catalog as it was before (tests/test_security_birth.py kills the
  first open at each of its writes in turn).
- BEGIN EXCLUSIVE takes the write lock before the revision is read, so a second process waits (up to
  LOCK_WAIT_S) and then finds the schema at head, with nothing left to do.

alembic itself (and mako, which it imports) loads only when there is something to migrate: a catalog
already at migrations.HEAD costs one read of alembic_version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

import migrations

if TYPE_CHECKING:
    from alembic.config import Config

LOCK_WAIT_S = 120.0  # another process's migration; creating a new catalog takes well under a second


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """alembic's own idea of the newest revision (migrations.HEAD must agree)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations package has no revisions"
    return head


def current_revision(connection: Connection) -> str | None:
    try:
        row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    except exc.OperationalError:  # no such table: a new catalog
        return None
    return row[0] if row else None


def upgrade_to_head(engine: Engine) -> None:
    """Bring the catalog's schema to the newest revision; a no-op (one read) when it is there already."""
    head = migrations.HEAD
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return
    migrator = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": LOCK_WAIT_S})
    event.listen(migrator, "connect", _driver_stays_out)
    event.listen(migrator, "begin", _begin_exclusive)
    try:
        with migrator.begin() as conn:
            if current_revision(conn) != head:  # read under the lock: another process may have done it
                from alembic import command

                command.upgrade(alembic_config(conn), "head")
    finally:
        migrator.dispose()


def _driver_stays_out(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT around statements, DDL included


def _begin_exclusive(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN EXCLUSIVE")
