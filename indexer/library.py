"""One library, assembled in one place: what every command, the server and the tests go through.

    library = Library.open(settings)         # the data dir's catalog, migrated; the library's model
    library.writer()                         # the one writer, with its hooks (tag suggestions)
    library.searcher()                       # search, caught up with the catalog
    library.encoder()                        # the CLIP model, loaded on first use (the model cache)

A Library owns the data dir's layout (indexer/layout.py), the catalog, the models (indexer/models.py:
loaded lazily under a lock, unloaded when idle), the writer with its hooks, and the searcher. The CLI
(indexer/cli.py) and the Flask app (searchd/app.py) are thin layers over it, so they cannot drift
apart: `index`, `watch` and the images searchd generates all get the same hooks.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.catalog.store import Catalog, ModelIdentity, open_catalog
from indexer.errors import BadInput, ModelMismatch, NoLibrary, UnknownImage
from indexer.layout import DataDir, machine_cache_dir, remove_stale_temporaries
from indexer.lock import WriterLock
from indexer.models import ModelCache
from indexer.settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from indexer.distributed import RayOptions
    from indexer.encoder import Encoder
    from indexer.search import Searcher
    from indexer.towers import OnnxClip
    from indexer.writer import BatchHook, Writer

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
PRECISIONS = ("int8", "fp32")


def _exported(folder: Path, precision: str) -> bool:
    from indexer.onnx_towers import OnnxManifest, OnnxModelError

    try:
        return OnnxManifest.load(folder).has(precision)
    except OnnxModelError:
        return False


def cpu_only(device: str) -> bool:
    """Whether CLIP will run on the CPU, decided without importing torch (that costs seconds)."""
    if device != "auto":
        return device == "cpu"
    if sys.platform == "darwin":
        return False  # Apple's GPU (MPS): torch decides
    return not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))


def onnx_folder(spec: str) -> Path:
    """Where this machine keeps the ONNX export of a model spec. A local weights file is keyed by its
    size and time too, so a replaced file is exported again."""
    key = spec
    weights = Path(spec.partition(":")[2])
    if spec.strip() in ("toy", "toy-clip"):
        from indexer.toyclip import CHECKPOINT_PATH

        weights = CHECKPOINT_PATH
    if weights.is_file():
        st = weights.stat()
        key += f"-{st.st_size}-{int(st.st_mtime)}"
    return machine_cache_dir() / "onnx" / re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:200]


class Library:
    def __init__(self, settings: Settings, catalog: Catalog, models: ModelCache | None = None) -> None:
        # No --model: the library's own, as it is now (a reembed later switches it under a reader).
        self._own_model = not settings.model
        if not settings.model:
            settings = settings.replace(model=catalog.active_spec() or DEFAULT_MODEL)
        self.settings = settings
        self.layout: DataDir = settings.layout
        self.catalog = catalog
        self.models = models or ModelCache(settings.model_idle_unload_s)
        self._images_only = False  # the text tower is not needed any more (an indexing process)
        self._onnx: OnnxClip | None = None
        self._onnx_lock = threading.Lock()
        self._checked: set[ModelIdentity] = set()
        self._searcher: Searcher | None = None
        self._search_lock = threading.Lock()  # guards making the searcher and catching up
        self._checked_at = float("-inf")

    @classmethod
    def open(cls, settings: Settings, models: ModelCache | None = None, must_exist: bool = False) -> Library:
        """The library in settings.data_dir (created and migrated as needed). With no --model given,
        the library's own model: the one its photos were embedded with."""
        if must_exist and not settings.layout.catalog.exists():
            raise NoLibrary(
                f"there is no library in {settings.data_dir} yet: run `photoseek index FOLDER` first"
            )
        return cls(settings, open_catalog(settings.data_dir), models)

    @classmethod
    def models_only(cls, settings: Settings) -> Library:
        """A Library without a catalog, for its models alone: a Ray worker loads the driver's model
        through the same code as every other process (indexer/distributed/). settings.model is set."""
        assert settings.model, "a worker is told the model; it has no catalog to ask"
        return cls(settings, None)  # type: ignore[arg-type]

    def close(self) -> None:
        self.models.clear()
        if self.catalog is not None:
            self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- models ---------------------------------------------------------------------------------------
    @property
    def clip_key(self) -> str:
        return f"clip:{self.settings.model}@{self.settings.device}"

    def encoder(self) -> Encoder | OnnxClip:
        """The library's CLIP model for photos and queries: on ONNX Runtime where the `runtime` setting
        says so (the default on a CPU; indexer/towers.py), else torch. Nothing loads until it is used."""
        if self.uses_onnx():
            return self._onnx_clip()
        return self.torch_encoder()

    def torch_encoder(self) -> Encoder:
        """The torch model (generation needs its gradients), loaded on first use."""
        return self.models.get(self.clip_key, self._load_clip, self.settings.model_idle_unload_s)

    def uses_onnx(self) -> bool:
        runtime = self.settings.runtime
        if runtime not in RUNTIMES:
            raise BadInput(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if runtime == "auto":
            return cpu_only(self.settings.device) and importlib.util.find_spec("onnxruntime") is not None
        return runtime == "onnx"

    def _onnx_clip(self) -> OnnxClip:
        with self._onnx_lock:
            if self._onnx is None:
                from indexer.towers import OnnxClip

                precision = self.settings.onnx_precision
                if precision not in PRECISIONS:
                    raise BadInput(f"onnx_precision must be {' or '.join(PRECISIONS)}, not {precision!r}")
                folder = onnx_folder(self.settings.model)
                if not _exported(folder, precision):
                    self._export_onnx(folder, precision)
                threads, idle = self.settings.torch_threads, self.settings.model_idle_unload_s
                self._onnx = OnnxClip(folder, self.models, threads, precision, idle)
            return self._onnx

    def _export_onnx(self, folder: Path, precision: str) -> None:
        """Export once per machine: another process exporting the same model is waited for, not
        repeated (an export costs torch and ~10 s for a ViT-B)."""
        from indexer.onnx_export import export

        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f".{folder.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _exported(folder, precision):
                return  # done by another process meanwhile
            log.info("exporting %s to ONNX once for this machine (%s)", self.settings.model, folder)
            export(self.settings.model, folder, int8=precision == "int8")

    def loaded_encoder(self) -> Encoder | OnnxClip | None:
        """The encoder if any of its towers is in memory (the watcher's status says so)."""
        if self._onnx is not None:
            return self._onnx if self._onnx.loaded() else None
        return self.models.peek(self.clip_key)

    def images_only(self) -> None:
        """This process embeds images only from now on: free the text tower, and keep it freed when the
        model is loaded again after an idle unload (bench/RESULTS.md: peak RSS while indexing)."""
        self._images_only = True
        encoder = self._onnx or self.models.peek(self.clip_key)
        if encoder is not None:
            encoder.release_text_tower()

    def _load_clip(self) -> Encoder:
        from indexer.encoder import load_encoder, set_torch_threads

        set_torch_threads(self.settings.torch_threads)
        encoder = load_encoder(self.settings.model, self.settings.device)
        if self._images_only:
            encoder.release_text_tower()
        return encoder

    # -- the model check: the one place that refuses another model's vectors -------------------------
    def check_model(self, identity: ModelIdentity | None = None, adopt: bool = False) -> int:
        """The catalog's id of `identity` (default: the loaded model's), which must be the library's
        model. `adopt`: a library without photos takes this model (the first index does that)."""
        identity = identity or self.encoder().identity
        active = self.catalog.active_model()
        if active is None:
            if not adopt:
                raise self.no_photos()
            self.catalog.set_active_model(identity)
        elif active != identity and self._own_model:
            raise ModelMismatch(
                f"the library now uses {active.label}, but this process loaded {identity.label} "
                f"(`photoseek reembed` switched it): restart `photoseek serve` to load the new model"
            )
        elif active != identity:
            raise ModelMismatch(
                f"this library's embeddings were made with {active.label} ({active.dim} dimensions), not "
                f"{identity.label}: the vectors are not comparable. Drop --model to use the library's "
                f"model ({self.catalog.active_spec() or active.label}), or switch the library with "
                f"`photoseek reembed --model {self.settings.model}`"
            )
        model_id = self.catalog.model_id(identity)
        assert model_id is not None
        if identity not in self._checked:
            self.catalog.remember_spec(model_id, self.settings.model)
            self._checked.add(identity)
        return model_id

    def check_same_model(self, expected: ModelIdentity, got: ModelIdentity, where: str) -> None:
        """Refuse vectors made elsewhere (`where`: a Ray worker) with another model than `expected`."""
        if got != expected:

            def told(m: ModelIdentity) -> str:
                return f"{m.label} ({m.dim} dimensions, weights {m.file_hash[:12] or 'unhashed'})"

            raise ModelMismatch(
                f"{where} loaded {told(got)}, but this library embeds with {told(expected)}: their vectors "
                f"are not comparable. Install the same photoseek and model weights on every node"
            )

    def check_model_early(self) -> None:
        """Refuse another model before any work when --model names one the library was not made with.
        Loads the model only then: the library's own model is checked when it is first used."""
        spec = self.catalog.active_spec()
        if spec is not None and spec != self.settings.model:
            self.check_model()

    # -- writing ----------------------------------------------------------------------------------------
    def writer_lock(self) -> WriterLock:
        return WriterLock(self.layout.writer_lock)

    def hooks(self) -> list[BatchHook]:
        """What runs inside every indexing batch, whoever indexes: tag suggestions."""
        from indexer.tags.suggest import TagSuggestions

        return [TagSuggestions(self.settings, self.catalog, self.encoder)]

    def writer(
        self,
        images_only: bool = False,
        between_photos: Callable[[], None] | None = None,
        ray: RayOptions | None = None,
    ) -> Writer:
        """The writer, with the library's hooks (hold writer_lock() while it runs). `images_only`: free
        the text tower once the hooks have what they need from it. `ray`: whole roots are read and
        embedded on that Ray cluster (docs/distributed.md) until the writer's scale_in()."""
        from indexer.writer import Writer

        self.check_model_early()
        for path in remove_stale_temporaries(self.layout.root, self.layout.vectors):
            log.info("removed %s, left half-written by a process that was killed", path.name)
        return Writer(
            self.settings,
            self.catalog,
            self.encoder,
            lambda: self.check_model(adopt=True),
            hooks=self.hooks(),
            after_prepare=self.images_only if images_only else None,
            between_photos=between_photos,
            cluster=self.ray_stage(ray) if ray is not None else None,
        )

    def ray_stage(self, options: RayOptions):
        """Read and embed on a Ray cluster with this library's model and settings (connects on first use)."""
        from indexer.distributed.stage import RayStage

        return RayStage(options, self.settings, self.check_same_model)

    # -- reading ----------------------------------------------------------------------------------------
    def searcher(self, catch_up_interval_s: float = 0.0) -> Searcher:
        """The searcher over the vector index, caught up with the catalog if the last check is older
        than the interval (readers see new photos without a restart, docs/design.md invariant 2)."""
        self.catch_up(catch_up_interval_s)
        if self._searcher is None:
            raise self.no_photos()
        return self._searcher

    def catch_up(self, min_interval: float = 0.0) -> bool:
        """Apply the indexer's committed changes to the vector index; True if it changed."""
        if time.monotonic() - self._checked_at < min_interval:
            return False
        with self._search_lock:
            started = time.monotonic()
            if started - self._checked_at < min_interval:
                return False  # another thread checked while this one waited
            changed = self._catch_up_locked()
            # The check started before reading last_seq: a commit after `started` is seen next time.
            self._checked_at = started
            return changed

    def _catch_up_locked(self) -> bool:
        from indexer.search import Searcher

        if self._searcher is None:
            if self.catalog.active_model() is None:
                return False
            self._searcher = Searcher(self)
            return True
        searcher = self._searcher
        if self.catalog.last_seq() == searcher.vectors.seq:
            return False
        if self.catalog.active_model() != searcher.vectors.identity:  # `photoseek reembed` switched it
            self.check_model(searcher.vectors.identity)  # raises, saying what to do
        return searcher.catch_up()

    def stored_vector(self, image_id: int) -> np.ndarray:
        """The catalog's embedding of an indexed photo (in the library's model)."""
        active = self.catalog.active_model()
        model_id = self.catalog.model_id(active, create=False) if active is not None else None
        ids, vectors = (
            self.catalog.searchable_vectors(model_id, [image_id]) if model_id is not None else ([], None)
        )
        if len(ids) == 0:
            why = f"image #{image_id} is not in the library (unknown, removed, or failed to index)"
            raise UnknownImage(image_id, why)
        return vectors[0]  # type: ignore[index]

    def no_photos(self) -> NoLibrary:
        return NoLibrary(
            f"the library in {self.settings.data_dir} has no photos yet: run `photoseek index FOLDER`"
        )

    # -- facts ------------------------------------------------------------------------------------------
    def model_label(self) -> str | None:
        active = self.catalog.active_model()
        return active.label if active else None

    def indexed_count(self) -> int:
        return len(self._searcher.vectors) if self._searcher else 0

    def index_seq(self) -> int:
        return self._searcher.vectors.seq if self._searcher else 0
