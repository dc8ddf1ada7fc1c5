"""The FAISS vector index: a cache of the catalog's embeddings for one model.

FAISS ids are catalog image ids. The index remembers the change sequence it reflects; `catch_up`
applies later changes, and a missing, corrupt or foreign file is rebuilt from the catalog without
re-embedding anything (design invariants 1 and 2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import faiss
import numpy as np

from indexer.catalog.store import Catalog, ModelIdentity

log = logging.getLogger(__name__)


def faiss_gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Exact inner-product search over unit vectors (cosine similarity), keyed by image id."""

    def __init__(self, identity: ModelIdentity, model_id: int) -> None:
        self.identity = identity
        self.model_id = model_id
        self.seq = 0
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(identity.dim))
        self._lock = threading.RLock()  # searches run on many threads; catch-up mutates
        self._gpu: faiss.Index | None = None  # search copy on the GPU, rebuilt after changes
        self._gpu_res = None

    # -- persistence --------------------------------------------------------------------------------
    @staticmethod
    def paths(vectors_dir: Path, identity: ModelIdentity) -> tuple[Path, Path]:
        return vectors_dir / f"{identity.key}.faiss", vectors_dir / f"{identity.key}.json"

    def save(self, vectors_dir: Path) -> None:
        """Write atomically: the .faiss file, then the .json that vouches for it (checksum and seq)."""
        vectors_dir.mkdir(parents=True, exist_ok=True)
        index_path, meta_path = self.paths(vectors_dir, self.identity)
        with self._lock:
            data = faiss.serialize_index(self.index)
            seq, count = self.seq, self.index.ntotal
        _atomic_write(index_path, data.tobytes())
        meta = {
            "seq": seq,
            "count": count,
            "model": self.identity.__dict__,
            "blake2b": hashlib.blake2b(data.tobytes(), digest_size=32).hexdigest(),
        }
        _atomic_write(meta_path, json.dumps(meta).encode())

    @classmethod
    def load(cls, vectors_dir: Path, identity: ModelIdentity, model_id: int) -> VectorIndex | None:
        """The saved index if it is intact and of this model; None otherwise (the caller rebuilds)."""
        index_path, meta_path = cls.paths(vectors_dir, identity)
        try:
            meta = json.loads(meta_path.read_text())
            data = index_path.read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("model") != identity.__dict__:
            log.warning("%s belongs to another model; rebuilding", index_path.name)
            return None
        if hashlib.blake2b(data, digest_size=32).hexdigest() != meta.get("blake2b"):
            log.warning("%s fails its checksum (corrupt or half-written); rebuilding", index_path.name)
            return None
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            log.warning("%s cannot be read (%s); rebuilding", index_path.name, exc)
            return None
        vi = cls(identity, model_id)
        vi.index, vi.seq = index, int(meta["seq"])
        return vi

    @classmethod
    def open(cls, catalog: Catalog, vectors_dir: Path, identity: ModelIdentity) -> VectorIndex:
        """Load the saved index, or rebuild it, then catch up with the catalog."""
        model_id = catalog.model_id(identity)
        assert model_id is not None
        vi = cls.load(vectors_dir, identity, model_id)
        if vi is not None and vi.seq > catalog.last_seq():
            log.warning("vector index is ahead of the catalog (restored backup?); rebuilding")
            vi = None
        if vi is None:
            vi = cls(identity, model_id)
            vi.rebuild(catalog)
        else:
            vi.catch_up(catalog)
        return vi

    # -- keeping up with the catalog ----------------------------------------------------------------
    def rebuild(self, catalog: Catalog) -> None:
        seq = catalog.last_seq()  # read first: changes committed meanwhile are applied next catch-up
        ids, vecs = catalog.searchable_vectors(self.model_id)
        fresh = faiss.IndexIDMap2(faiss.IndexFlatIP(self.identity.dim))
        if len(ids):
            fresh.add_with_ids(vecs, ids)
        with self._lock:
            self.index, self.seq, self._gpu = fresh, seq, None

    def catch_up(self, catalog: Catalog) -> bool:
        """Apply the catalog's changes since self.seq; True if anything changed."""
        seq, changed = catalog.changes_since(self.seq)
        if seq == self.seq:
            return False
        if None in changed:  # a change to every image (the active model switched)
            self.rebuild(catalog)
            return True
        ids = np.fromiter(changed, dtype=np.int64, count=len(changed))
        present_ids, vecs = catalog.searchable_vectors(self.model_id, ids.tolist())
        with self._lock:
            self.index.remove_ids(ids)
            if len(present_ids):
                self.index.add_with_ids(vecs, present_ids)
            self.seq, self._gpu = seq, None
        return True

    # -- search -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector; allowed_ids restricts the candidates (filters)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        with self._lock:
            k = min(k, len(self) if allowed_ids is None else min(len(self), len(allowed_ids)))
            if k <= 0:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            if allowed_ids is not None:
                sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
                scores, ids = self.index.search(q, k, params=faiss.SearchParameters(sel=sel))
            else:
                scores, ids = self._search_index().search(q, k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _search_index(self) -> faiss.Index:
        if not faiss_gpu_available() or len(self) < 10_000:
            return self.index  # small indexes: the copy to the GPU costs more than it saves
        if self._gpu is None:
            self._gpu_res = self._gpu_res or faiss.StandardGpuResources()
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        return self._gpu

    def vector(self, image_id: int) -> np.ndarray | None:
        with self._lock:
            try:
                return self.index.reconstruct(int(image_id))
            except RuntimeError:
                return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
