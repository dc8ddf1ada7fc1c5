"""The catalog: migrations agree with the models, SQLite is set up as the design needs."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from indexer.catalog import Base, images, open_catalog
from indexer.catalog.migrate import head_revision
from indexer.catalog.schema import ADDED, Image, Root
from indexer.catalog.store import ModelIdentity, utcnow


def test_migrations_match_models(tmp_path):
    catalog = open_catalog(tmp_path)
    with catalog.engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() == head_revision()
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_head_constant_is_alembics_head_and_an_open_catalog_does_not_import_alembic(tmp_path):
    import subprocess
    import sys

    import migrations

    assert head_revision() == migrations.HEAD  # update migrations.HEAD with every new migration
    open_catalog(tmp_path).close()  # created and migrated here; the next open finds it at head
    code = (
        "import sys; from pathlib import Path; from indexer.catalog import open_catalog; "
        f"open_catalog(Path({str(tmp_path)!r})).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    catalog = open_catalog(tmp_path)
    with catalog.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_reopening_is_idempotent_and_keeps_data(tmp_path):
    catalog = open_catalog(tmp_path)
    root = catalog.ensure_root(tmp_path / "photos")
    catalog.close()
    again = open_catalog(tmp_path)
    assert [r.id for r in again.roots()] == [root.id]


def test_change_sequence_is_monotonic_and_never_reused(tmp_path):
    catalog = open_catalog(tmp_path)
    root = catalog.ensure_root(tmp_path)
    with catalog.session() as s:
        im = Image(root_id=root.id, path=str(tmp_path / "a.jpg"), indexed_at=utcnow())
        s.add(im)
        s.flush()
        for _ in range(3):
            images.record_change(s, im.id, ADDED, utcnow())
    first = catalog.last_seq()
    assert first == 3
    with catalog.session() as s:  # delete the newest change row: AUTOINCREMENT must not hand 3 out again
        s.execute(text("DELETE FROM changes WHERE seq = 3"))
    with catalog.session() as s:
        images.record_change(s, None, ADDED, utcnow())
    assert catalog.last_seq() == 4
    seq, changed = catalog.changes_since(2)
    assert seq == 4 and changed == {None}


def test_root_delete_cascades_to_images(tmp_path):
    catalog = open_catalog(tmp_path)
    root = catalog.ensure_root(tmp_path)
    with catalog.session() as s:
        s.add(Image(root_id=root.id, path=str(tmp_path / "a.jpg"), indexed_at=utcnow()))
    with catalog.session() as s:
        s.delete(s.get(Root, root.id))
    with catalog.session() as s:
        assert s.query(Image).count() == 0


def test_active_model_switch_records_a_global_change(tmp_path):
    catalog = open_catalog(tmp_path)
    a = ModelIdentity("arch", "tag-a", "", 8)
    b = ModelIdentity("arch", "tag-b", "", 8)
    catalog.set_active_model(a)
    assert catalog.active_model() == a
    before = catalog.last_seq()
    catalog.set_active_model(b)
    assert catalog.active_model() == b
    seq, changed = catalog.changes_since(before)
    assert seq > before and None in changed
