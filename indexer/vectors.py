"""The FAISS vector index: a cache of the catalog's embeddings for one model.

FAISS ids are catalog image ids. The index remembers the change sequence it reflects; `catch_up`
applies later changes, and a missing, corrupt or foreign file is rebuilt from the catalog without
re-embedding anything (design invariants 1 and 2).

Two kinds of index, chosen from the vector count whenever the index is rebuilt:
  flat  exhaustive inner product over fp16 copies of the vectors (IndexScalarQuantizer QT_fp16 in
        IndexIDMap2). Up to `approximate_above` vectors. Half the bytes of fp32 to scan and to hold:
        one query over 100k x 512 takes 5.4 ms instead of 11.9 on the dev CPU, and a score moves by
        ~1e-5 (unit vectors), so the top 10 is that of fp32 (recall@10 1.0, bench/RESULTS.md).
  ivf   approximate: IndexIVFFlat, about sqrt(n) lists, NPROBE_FRACTION of them scanned per query.
        IVF rather than HNSW because on a small CPU it builds in seconds where HNSW takes many
        minutes at 1M vectors, it costs no memory beyond the vectors, and it removes ids natively
        (a hashtable direct map), so deletes and catch-up work exactly as with the flat index.
        recall@10 against exact search is measured in bench/ and tested in test_vectors_approx.py.
The kind, and the IVF's list count, are re-chosen by a rebuild when the count crosses the threshold
or has grown 4x since the lists were trained (k-means centroids go stale as a library grows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from pathlib import Path

import faiss
import numpy as np

from indexer.catalog.store import Catalog, ModelIdentity

log = logging.getLogger(__name__)


FLAT, IVF = "flat", "ivf"
DEFAULT_APPROXIMATE_ABOVE = 200_000  # Settings.approximate_above's default
NPROBE_FRACTION = 1 / 10  # of the IVF lists scanned per query: recall@10 >= 0.95 (bench/RESULTS.md)
KMEANS_POINTS_PER_LIST = 64  # training sample per list: bounds the k-means time at rebuild
EXACT_FILTER_MAX = 20_000  # a filter allowing fewer ids than this is searched exactly, even on IVF


def kind_for(count: int, approximate_above: int) -> str:
    """Which index `count` vectors get; approximate_above <= 0 keeps search exact at any size."""
    return IVF if 0 < approximate_above < count else FLAT


def ivf_lists(count: int) -> int:
    return max(16, round(math.sqrt(count)))


def _new_flat(dim: int) -> faiss.Index:
    sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(sq)


def _new_index(kind: str, dim: int, train: np.ndarray) -> faiss.Index:
    if kind == FLAT:
        return _new_flat(dim)
    nlist = ivf_lists(len(train))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.max_points_per_centroid = KMEANS_POINTS_PER_LIST
    ivf.cp.niter = 10
    ivf.train(train)
    # The hashtable direct map lets remove_ids and reconstruct work with arbitrary (catalog) ids.
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    ivf.nprobe = max(1, round(nlist * NPROBE_FRACTION))
    return ivf


_thread_state = threading.local()


def _search_single_threaded() -> None:
    """One query, one thread: searchd's parallelism is across requests. With FAISS's default (an
    OpenMP team per query) a busy machine makes each query wait on descheduled spinning partners:
    measured on the shared 2-core machine at load 12, 10k exact p50 94 ms with 2 threads, 1.7 ms with 1.
    OpenMP's thread count is a per-thread setting, so this leaves other threads' bulk work alone."""
    if not getattr(_thread_state, "single", False):
        faiss.omp_set_num_threads(1)
        _thread_state.single = True


def faiss_gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Exact inner-product search over unit vectors (cosine similarity), keyed by image id."""

    def __init__(
        self, identity: ModelIdentity, model_id: int, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE
    ) -> None:
        self.identity = identity
        self.model_id = model_id
        self.approximate_above = approximate_above
        self.seq = 0
        self.index = _new_flat(identity.dim)
        self._lock = threading.RLock()  # searches run on many threads; catch-up mutates
        self._gpu: faiss.Index | None = None  # search copy on the GPU, rebuilt after changes
        self._gpu_res = None
        self._gpu_failed = False  # faiss-gpu has no flat fp16 index: such a copy is not retried

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
    def load(
        cls,
        vectors_dir: Path,
        identity: ModelIdentity,
        model_id: int,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
    ) -> VectorIndex | None:
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
        vi = cls(identity, model_id, approximate_above)
        vi.index, vi.seq = index, int(meta["seq"])
        return vi

    @classmethod
    def open(
        cls,
        catalog: Catalog,
        vectors_dir: Path,
        identity: ModelIdentity,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
    ) -> VectorIndex:
        """Load the saved index, or rebuild it, then catch up with the catalog."""
        model_id = catalog.model_id(identity)
        assert model_id is not None
        vi = cls.load(vectors_dir, identity, model_id, approximate_above)
        if vi is not None and vi.seq > catalog.last_seq():
            log.warning("vector index is ahead of the catalog (restored backup?); rebuilding")
            vi = None
        if vi is not None and vi._outgrown():
            log.info("vector index: %d vectors call for another kind than %s; rebuilding", len(vi), vi.kind)
            vi = None  # approximate_above changed, or the library grew past what the lists were made for
        if vi is None:
            vi = cls(identity, model_id, approximate_above)
            vi.rebuild(catalog)
        else:
            vi.catch_up(catalog)
        return vi

    # -- keeping up with the catalog ----------------------------------------------------------------
    def rebuild(self, catalog: Catalog) -> None:
        seq = catalog.last_seq()  # read first: changes committed meanwhile are applied next catch-up
        ids, vecs = catalog.searchable_vectors(self.model_id)
        fresh = _new_index(kind_for(len(ids), self.approximate_above), self.identity.dim, vecs)
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
        if self._outgrown():
            self.rebuild(catalog)
        return True

    @property
    def kind(self) -> str:
        return IVF if faiss.try_extract_index_ivf(self.index) is not None else FLAT

    def _outgrown(self) -> bool:
        """True when the count asks for another kind, or for 4x the IVF lists trained."""
        n = len(self)
        if kind_for(n, self.approximate_above) != self.kind:
            return True
        if self.kind == FLAT and not isinstance(
            faiss.downcast_index(self.index.index), faiss.IndexScalarQuantizer
        ):
            return True  # saved by an older photoseek as fp32: rebuilt once as fp16
        return self.kind == IVF and ivf_lists(n) >= 2 * faiss.extract_index_ivf(self.index).nlist

    # -- search -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector; allowed_ids restricts the candidates (filters)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        _search_single_threaded()
        with self._lock:
            k = min(k, len(self) if allowed_ids is None else min(len(self), len(allowed_ids)))
            if k <= 0:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            if allowed_ids is not None and self.kind == IVF and len(allowed_ids) <= EXACT_FILTER_MAX:
                return self._exact_among(q[0], k, np.asarray(allowed_ids, dtype=np.int64))
            if allowed_ids is not None:
                sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
                params = (
                    faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
                    if self.kind == IVF
                    else faiss.SearchParameters(sel=sel)
                )
                scores, ids = self.index.search(q, k, params=params)
            else:
                scores, ids = self._search_index().search(q, k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _exact_among(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among a few allowed ids: an IVF would miss those outside the probed lists."""
        present = np.fromiter((i for i in allowed.tolist() if self._has(i)), dtype=np.int64)
        if not len(present):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores = self.index.reconstruct_batch(present) @ q
        top = np.argsort(-scores, kind="stable")[:k]
        return scores[top].astype(np.float32), present[top]

    def _has(self, image_id: int) -> bool:
        try:
            self.index.reconstruct(image_id)
        except RuntimeError:
            return False
        return True

    def _search_index(self) -> faiss.Index:
        if self._gpu_failed or not faiss_gpu_available() or len(self) < 10_000:
            return self.index  # small indexes: the copy to the GPU costs more than it saves
        if self._gpu is None:
            self._gpu_res = self._gpu_res or faiss.StandardGpuResources()
            try:
                self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
            except RuntimeError as exc:
                log.info("vector index stays on the CPU (%s)", str(exc).splitlines()[0])
                self._gpu_failed = True
                return self.index
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
