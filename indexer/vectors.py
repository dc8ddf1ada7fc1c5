"""The FAISS vector index: a cache of the catalog's embeddings for one model.

FAISS ids are catalog image ids. The index remembers the change sequence it reflects; `catch_up`
applies later changes, and a missing, corrupt or foreign file is rebuilt from the catalog without
re-embedding anything (docs/design.md invariants 1 and 2).

Three kinds, chosen from the vector count whenever the index is rebuilt (docs/scale.md):
  flat    exhaustive inner product over fp16 copies (IndexScalarQuantizer QT_fp16 in IndexIDMap2), up
          to `approximate_above` vectors. One query over 100k x 512: 5 ms on the dev CPU; scores within
          ~1e-5 of fp32 (unit vectors), so the top 10 is that of fp32. Saved and loaded whole.
  ivf     approximate, above `approximate_above`: IVF over fp16 codes, 4 sqrt(n) lists, as a base that
          is mapped from disk and never modified plus a delta in memory (indexer/vectors_ivf.py).
          1M x 512: recall@10 0.958 at ~1.5 ms a query, built in under a minute on 2 cores.
  ondisk  above `ondisk_above`: the same with 8-bit codes (half the bytes, scores within ~1e-3); what
          is resident is the centroids plus what the page cache keeps of the lists.
HNSW was measured against the IVF family and not adopted (bench/RESULTS.md, issue 15): a graph built
within the time IVF takes is below 0.90 recall at the same latency, a good one takes ~10 minutes on 2
cores, and it cannot remove a vector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zlib
from pathlib import Path

import faiss
import numpy as np

from indexer import vectors_ivf as layered
from indexer.catalog.store import Catalog, ModelIdentity
from indexer.catalog.streams import iter_searchable_vectors, sample_searchable_vectors, searchable_count
from indexer.vectors_ivf import IVF, ONDISK, Base, LayeredIndex

log = logging.getLogger(__name__)

FLAT = "flat"
DEFAULT_APPROXIMATE_ABOVE = 200_000  # Settings.approximate_above's default
DEFAULT_ONDISK_ABOVE = 5_000_000  # Settings.ondisk_above's default: 5 GB of fp16 lists at 512-d
EXACT_FILTER_MAX = layered.EXACT_FILTER_MAX
LAYERED_FORMAT = 2  # meta "format" of the base + delta files; the flat kind's meta has none


def kind_for(count: int, approximate_above: int, ondisk_above: int = DEFAULT_ONDISK_ABOVE) -> str:
    """Which index `count` vectors get; approximate_above <= 0 keeps search exact at any size."""
    if approximate_above <= 0 or count <= approximate_above:
        return FLAT
    return ONDISK if 0 < ondisk_above < count else IVF


def _new_flat(dim: int) -> faiss.Index:
    sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(sq)


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
    """Inner-product search over unit vectors (cosine similarity), keyed by image id."""

    def __init__(
        self,
        identity: ModelIdentity,
        model_id: int,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        ondisk_above: int = DEFAULT_ONDISK_ABOVE,
    ) -> None:
        self.identity = identity
        self.model_id = model_id
        self.approximate_above = approximate_above
        self.ondisk_above = ondisk_above
        self.seq = 0
        self.index = _new_flat(identity.dim)  # the flat kind's index
        self.layered: LayeredIndex | None = None  # the ivf and ondisk kinds'
        self._dir: Path | None = None  # where a layered base is built and saved (set by open)
        self._catalog: Catalog | None = None  # exact vectors for re-ranking, and for compaction
        self._meta_seen: tuple[int, int] | None = None  # (mtime_ns, size) of the meta last read/written
        self._base_files: dict = {}  # the layered base's files: [size, crc32] by name, for the meta
        self._lock = threading.RLock()  # searches run on many threads; catch-up mutates
        self._gpu: faiss.Index | None = None  # search copy on the GPU, rebuilt after changes
        self._gpu_res = None
        self._gpu_failed = False  # faiss-gpu has no flat fp16 index: such a copy is not retried

    # -- persistence --------------------------------------------------------------------------------
    @staticmethod
    def paths(vectors_dir: Path, identity: ModelIdentity) -> tuple[Path, Path]:
        """(the flat kind's index file, the meta file that vouches for whatever kind is saved)."""
        return vectors_dir / f"{identity.key}.faiss", vectors_dir / f"{identity.key}.json"

    def save(self, vectors_dir: Path) -> None:
        """Write atomically: the data, then the .json that vouches for it (checksums and seq).

        A layered index writes only its delta (the base was written once, when built); if the
        delta has outgrown the base, the base is rebuilt from the catalog first (compaction)."""
        vectors_dir.mkdir(parents=True, exist_ok=True)
        if self.layered is not None:
            if self._catalog is not None and (self.layered.needs_compaction() or self._lists_stale()):
                log.info("vector index: %d changes since its base; rebuilding it", self.layered.pending)
                self.rebuild(self._catalog)  # saves as it ends
                return
            self._save_layered(vectors_dir)
            return
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

    def _save_layered(self, vectors_dir: Path) -> None:
        assert self.layered is not None
        with self._lock:
            lay, seq, count = self.layered, self.seq, len(self.layered)
            delta = lay.delta_bytes()
        base = lay.base
        delta_name = f"{base.stem}.delta"
        _atomic_write(vectors_dir / delta_name, delta)
        meta = {
            "format": LAYERED_FORMAT,
            "kind": lay.kind,
            "seq": seq,
            "count": count,
            "model": self.identity.__dict__,
            "base": {"stem": base.stem, "seq": base.seq, "files": self._base_files},
            "delta": {"file": delta_name, "crc32": zlib.crc32(delta)},
        }
        index_path, meta_path = self.paths(vectors_dir, self.identity)
        _atomic_write(meta_path, json.dumps(meta).encode())
        self._meta_seen = _stamp(meta_path)
        index_path.unlink(missing_ok=True)  # a flat index saved before: superseded
        layered.sweep_orphans(vectors_dir, self.identity.key, keep={base.stem})

    @classmethod
    def load(
        cls,
        vectors_dir: Path,
        identity: ModelIdentity,
        model_id: int,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        ondisk_above: int = DEFAULT_ONDISK_ABOVE,
    ) -> VectorIndex | None:
        """The saved index if it is intact and of this model; None otherwise (the caller rebuilds)."""
        index_path, meta_path = cls.paths(vectors_dir, identity)
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("model") != identity.__dict__:
            log.warning("%s belongs to another model; rebuilding", meta_path.name)
            return None
        vi = cls(identity, model_id, approximate_above, ondisk_above)
        if meta.get("format") == LAYERED_FORMAT:
            return vi if vi._load_layered(vectors_dir, meta) else None
        try:
            data = index_path.read_bytes()
        except OSError:
            return None
        if hashlib.blake2b(data, digest_size=32).hexdigest() != meta.get("blake2b"):
            log.warning("%s fails its checksum (corrupt or half-written); rebuilding", index_path.name)
            return None
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            log.warning("%s cannot be read (%s); rebuilding", index_path.name, exc)
            return None
        vi.index, vi.seq = index, int(meta["seq"])
        return vi

    def _load_layered(self, vectors_dir: Path, meta: dict) -> bool:
        """Open a saved base (mapped) and its delta; False if anything is missing or damaged."""
        base_meta, delta_meta = meta["base"], meta["delta"]
        if not layered.base_intact(vectors_dir, base_meta["files"]):
            log.warning("vector index base %s is missing or damaged; rebuilding", base_meta["stem"])
            return False
        try:
            data = (vectors_dir / delta_meta["file"]).read_bytes()
            if zlib.crc32(data) != delta_meta["crc32"]:
                raise ValueError("checksum mismatch")
            delta, shadowed = LayeredIndex.delta_from_bytes(data)
            base = Base(vectors_dir, base_meta["stem"], meta["kind"], int(base_meta["seq"]))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("vector index %s cannot be read (%s); rebuilding", base_meta["stem"], exc)
            return False
        lay = LayeredIndex(base, delta, shadowed, self._exact_vectors)
        with self._lock:
            old, self.layered, self.seq = self.layered, lay, int(meta["seq"])
            self._base_files = base_meta["files"]
        if old is not None:
            old.close()
        self._meta_seen = _stamp(self.paths(vectors_dir, self.identity)[1])
        return True

    @classmethod
    def open(
        cls,
        catalog: Catalog,
        vectors_dir: Path,
        identity: ModelIdentity,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        ondisk_above: int = DEFAULT_ONDISK_ABOVE,
    ) -> VectorIndex:
        """Load the saved index, or rebuild it, then catch up with the catalog."""
        model_id = catalog.model_id(identity)
        assert model_id is not None
        vi = cls.load(vectors_dir, identity, model_id, approximate_above, ondisk_above)
        if vi is not None and vi.seq > catalog.last_seq():
            log.warning("vector index is ahead of the catalog (restored backup?); rebuilding")
            vi = None
        if vi is not None:
            vi._attach(catalog, vectors_dir)
            if vi._outgrown():
                log.info(
                    "vector index: %d vectors call for another kind than %s; rebuilding", len(vi), vi.kind
                )
                vi.rebuild(catalog)  # approximate_above changed, or the library grew past its lists
            else:
                vi.catch_up(catalog)
            return vi
        vi = cls(identity, model_id, approximate_above, ondisk_above)
        vi._attach(catalog, vectors_dir)
        vi.rebuild(catalog)
        return vi

    def _attach(self, catalog: Catalog, vectors_dir: Path) -> None:
        self._catalog, self._dir = catalog, vectors_dir

    def _exact_vectors(self, ids) -> tuple[np.ndarray, np.ndarray]:
        if self._catalog is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.identity.dim), dtype=np.float32)
        return self._catalog.searchable_vectors(self.model_id, list(ids))

    # -- keeping up with the catalog ----------------------------------------------------------------
    def rebuild(self, catalog: Catalog) -> None:
        seq = catalog.last_seq()  # read first: changes committed meanwhile are applied next catch-up
        kind = kind_for(searchable_count(catalog), self.approximate_above, self.ondisk_above)
        if kind != FLAT:
            self._rebuild_layered(catalog, kind, seq)
            return
        ids, vecs = catalog.searchable_vectors(self.model_id)
        fresh = _new_flat(self.identity.dim)
        if len(ids):
            fresh.add_with_ids(vecs, ids)
        with self._lock:
            old = self.layered
            self.index, self.layered, self.seq, self._gpu = fresh, None, seq, None
        if old is not None:
            old.close()

    def _rebuild_layered(self, catalog: Catalog, kind: str, seq: int) -> None:
        """A new base from the catalog, streamed (bounded memory at any size), then saved."""
        if self._dir is None:
            raise RuntimeError("an approximate vector index is built on disk: open it with VectorIndex.open")
        count = searchable_count(catalog)
        nlist = layered.lists_for(count)
        sample = sample_searchable_vectors(catalog, self.model_id, min(layered.TRAIN_MAX, 64 * nlist))
        template = layered.train_template(sample, kind, nlist)
        del sample
        chunks = iter_searchable_vectors(catalog, self.model_id)
        stem = layered.build_base(self._dir, self.identity.key, kind, template, chunks, seq)
        files = layered.describe_base(self._dir, stem)
        base = Base(self._dir, stem, kind, seq)
        lay = LayeredIndex(base, layered.clone_empty(template), np.zeros(0), self._exact_vectors)
        with self._lock:
            old, self.layered, self.seq, self._gpu = self.layered, lay, seq, None
            self._base_files = files
            self.index = _new_flat(self.identity.dim)  # a flat index held before: let it go
        if old is not None:
            old.close()
        self._save_layered(self._dir)  # the base files are only found again through the meta

    def catch_up(self, catalog: Catalog) -> bool:
        """Apply the catalog's changes since self.seq; True if anything changed."""
        adopted = self._adopt_saved(catalog)
        seq, changed = catalog.changes_since(self.seq)
        if seq == self.seq:
            return adopted
        if None in changed:  # a change to every image (the active model switched)
            self.rebuild(catalog)
            return True
        ids = np.fromiter(changed, dtype=np.int64, count=len(changed))
        present_ids, vecs = catalog.searchable_vectors(self.model_id, ids.tolist())
        with self._lock:
            if self.layered is not None:
                self.layered.apply(ids, present_ids, vecs)
            else:
                self.index.remove_ids(ids)
                if len(present_ids):
                    self.index.add_with_ids(vecs, present_ids)
            self.seq, self._gpu = seq, None
        if self._outgrown():
            self.rebuild(catalog)
        return True

    def _adopt_saved(self, catalog: Catalog) -> bool:
        """A reader's layered index switches to a newer base that the writer saved (compaction), so
        its own delta stays small without it ever rebuilding. Cheap when nothing changed: one stat."""
        if self.layered is None or self._dir is None:
            return False
        meta_path = self.paths(self._dir, self.identity)[1]
        stamp = _stamp(meta_path)
        if stamp is None or stamp == self._meta_seen:
            return False
        self._meta_seen = stamp
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return False
        if (
            meta.get("format") != LAYERED_FORMAT
            or meta.get("model") != self.identity.__dict__
            or meta["base"]["stem"] == self.layered.base.stem
            or int(meta["seq"]) > catalog.last_seq()
        ):
            return False
        return self._load_layered(self._dir, meta)

    @property
    def kind(self) -> str:
        if self.layered is not None:
            return self.layered.kind
        return "ivf-in-memory" if faiss.try_extract_index_ivf(self.index) is not None else FLAT

    def _lists_stale(self) -> bool:
        """The library doubled its vectors per list since the lists were trained."""
        return self.layered is not None and layered.lists_for(len(self)) >= 2 * self.layered.nlist

    def _outgrown(self) -> bool:
        """True when the count asks for another kind (or the saved index predates this format)."""
        n = len(self)
        if kind_for(n, self.approximate_above, self.ondisk_above) != self.kind:
            return True
        # a flat index saved by an older photoseek as fp32 is rebuilt once as fp16
        index = self.index.index if isinstance(self.index, faiss.IndexIDMap) else self.index
        return self.kind == FLAT and not isinstance(faiss.downcast_index(index), faiss.IndexScalarQuantizer)

    # -- search -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layered) if self.layered is not None else int(self.index.ntotal)

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
            if self.layered is not None:
                return self.layered.search(q, k, allowed_ids)
            if allowed_ids is not None:
                sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
                scores, ids = self.index.search(q, k, params=faiss.SearchParameters(sel=sel))
            else:
                scores, ids = self._search_index().search(q, k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

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

    def ids(self) -> np.ndarray:
        """The image ids this index holds, sorted: what checks compare with the catalog."""
        with self._lock:
            if self.layered is not None:
                return self.layered.ids()
            return np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))

    def vector(self, image_id: int) -> np.ndarray | None:
        """The stored vector of an image in the index; None if the index does not hold it."""
        with self._lock:
            if self.layered is not None:
                if not self.layered.contains(int(image_id)):
                    return None
                ids, vecs = self._exact_vectors([int(image_id)])  # exact, whatever the codec
                return vecs[0] if len(ids) else None
            try:
                return self.index.reconstruct(int(image_id))
            except RuntimeError:
                return None

    def close(self) -> None:
        """Let go of a mapped base (a reader that is done with this index)."""
        with self._lock:
            if self.layered is not None:
                self.layered.close()
                self.layered = None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
