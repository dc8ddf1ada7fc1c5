"""Opening the catalog, and the queries that more than one module needs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from indexer.catalog.embeddings import from_blobs, searchable_vectors_of
from indexer.catalog.images import chunked, record_change
from indexer.catalog.migrate import upgrade_to_head
from indexer.catalog.schema import EMBEDDED, Change, Image, Model, Root, Setting
from indexer.layout import CATALOG_FILE

ACTIVE_MODEL_KEY = "active_model"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two embeddings comparable: same architecture, same weights, same dimension."""

    name: str
    pretrained: str
    file_hash: str
    dim: int

    @property
    def label(self) -> str:
        return f"{self.name}:{self.pretrained}"

    @property
    def key(self) -> str:
        """A file-name-safe key, used for vectors/<key>.faiss."""
        tail = f"-{self.file_hash[:12]}" if self.file_hash else ""
        raw = f"{self.name}__{self.pretrained}{tail}"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer. NORMAL sync is crash-safe in WAL (a power cut may lose the
    # last transactions, never corrupt the file), which is what invariant 3 allows.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Catalog:
    """A migrated catalog.sqlite. Thread-safe: each `session()` is its own unit of work."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # -- the change sequence ----------------------------------------------------------------------
    def last_seq(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.coalesce(func.max(Change.seq), 0))) or 0

    def changes_since(self, seq: int) -> tuple[int, set[int | None]]:
        """(newest seq, ids of images changed after `seq`); None in the set means "everything"."""
        with self.session() as s:
            rows = s.execute(select(Change.seq, Change.image_id).where(Change.seq > seq)).all()
        if not rows:
            return seq, set()
        return max(r[0] for r in rows), {r[1] for r in rows}

    # -- models -----------------------------------------------------------------------------------
    def model_id(self, identity: ModelIdentity, create: bool = True) -> int | None:
        with self.session() as s:
            row = s.scalar(
                select(Model).where(
                    Model.name == identity.name,
                    Model.pretrained == identity.pretrained,
                    Model.file_hash == identity.file_hash,
                )
            )
            if row is None:
                if not create:
                    return None
                row = Model(
                    name=identity.name,
                    pretrained=identity.pretrained,
                    file_hash=identity.file_hash,
                    dim=identity.dim,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
            return row.id

    def remember_spec(self, model_id: int | None, spec: str) -> None:
        """Keep how this model was named, so later commands can load it without --model."""
        with self.session() as s:
            row = s.get(Model, model_id)
            if row is not None and row.spec != spec:
                row.spec = spec

    def active_spec(self) -> str | None:
        with self.session() as s:
            setting = s.get(Setting, ACTIVE_MODEL_KEY)
            row = s.get(Model, int(setting.value)) if setting else None
            return row.spec if row is not None and row.spec else None

    def active_model(self) -> ModelIdentity | None:
        """The model whose embeddings this catalog searches (set by the first index or by reembed)."""
        with self.session() as s:
            setting = s.get(Setting, ACTIVE_MODEL_KEY)
            if setting is None:
                return None
            row = s.get(Model, int(setting.value))
            assert row is not None
            return ModelIdentity(row.name, row.pretrained, row.file_hash, row.dim)

    def set_active_model(self, identity: ModelIdentity) -> None:
        mid = self.model_id(identity)
        with self.session() as s:
            setting = s.get(Setting, ACTIVE_MODEL_KEY)
            if setting is None:
                s.add(Setting(key=ACTIVE_MODEL_KEY, value=str(mid)))
            elif setting.value != str(mid):
                setting.value = str(mid)
                # Every vector of the search index changes space: readers must rebuild.
                record_change(s, None, EMBEDDED, utcnow())

    # -- roots and images -------------------------------------------------------------------------
    def ensure_root(self, path: Path) -> Root:
        key = str(path.resolve())
        with self.session() as s:
            root = s.scalar(select(Root).where(Root.path == key))
            if root is None:
                root = Root(path=key, online=True, added_at=utcnow())
                s.add(root)
                s.flush()
            return root

    def set_root_online(self, root_id: int, online: bool) -> None:
        with self.session() as s:
            s.get(Root, root_id).online = online  # type: ignore[union-attr]

    def set_root_observer(self, root_ids: Iterable[int], observer: str | None) -> None:
        """How a root is watched ("native", "polling"), or None when nobody watches it."""
        with self.session() as s:
            for root_id in root_ids:
                s.get(Root, root_id).observer = observer  # type: ignore[union-attr]

    def set_root_offline(self, root_id: int) -> None:
        with self.session() as s:
            row = s.get(Root, root_id)
            row.online, row.observer = False, None  # type: ignore[union-attr]

    def mark_scanned(self, root_id: int) -> None:
        with self.session() as s:
            s.get(Root, root_id).last_scan_at = utcnow()  # type: ignore[union-attr]

    def image_and_root(self, image_id: int) -> tuple[Image | None, str | None]:
        """An image's row (any status) and its root's path."""
        with self.session() as s:
            row = s.get(Image, image_id)
            root = s.get(Root, row.root_id) if row is not None else None
            return row, root.path if root is not None else None

    def roots(self) -> list[Root]:
        with self.session() as s:
            return list(s.scalars(select(Root).order_by(Root.path)))

    def images_by_ids(self, ids: Iterable[int]) -> dict[int, Image]:
        out: dict[int, Image] = {}
        with self.session() as s:
            for chunk in chunked(list(ids)):
                out.update({im.id: im for im in s.scalars(select(Image).where(Image.id.in_(chunk)))})
        return out

    def searchable_vectors(
        self, model_id: int, image_ids: Iterable[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, unit vectors float32) of OK images that have an embedding of this model."""
        with self.session() as s:
            rows = searchable_vectors_of(s, model_id, image_ids)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, from_blobs([r[1] for r in rows])


def get_setting(s: Session, key: str) -> str | None:
    row = s.get(Setting, key)
    return row.value if row is not None else None


def put_setting(s: Session, key: str, value: str) -> None:
    row = s.get(Setting, key)
    if row is None:
        s.add(Setting(key=key, value=value))
    else:
        row.value = value


def identity_of(s: Session, model_id: int) -> ModelIdentity:
    row = s.get(Model, model_id)
    if row is None:
        raise LookupError(f"model #{model_id} is not in the catalog")
    return ModelIdentity(row.name, row.pretrained, row.file_hash, row.dim)


def create_catalog_engine(path: Path) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_catalog(data_dir: Path) -> Catalog:
    """Open (creating and migrating as needed) the catalog of a data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CATALOG_FILE
    engine = create_catalog_engine(path)
    upgrade_to_head(engine)
    return Catalog(engine, path)
