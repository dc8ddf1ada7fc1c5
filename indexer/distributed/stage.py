"""The driver's side of the Ray path: read + embed on the cluster, batches back in order to the writer.

    plan (here) -> read: bytes shipped from here, or read from a shared mount -> decode, fit (read
    tasks, anywhere) -> dedup (here, in batch order) -> embed (actors) -> commit (here, in order)

Only read and embed move: the Writer keeps planning, deduplicating (Embedder.reserve) and committing,
so the invariants of docs/design.md hold as they do without a cluster. Batches are handed back in the
order they were planned, and deduplicated in that order too: a content two batches share is embedded
by the earlier one, which commits first. At most `window` batches are out at a time, so a killed
driver loses those and no more; Ray retries the read tasks and actor calls of a worker or node that
dies (tasks.py). Each batch's read task is placed on the node of the actor that will embed it, so
its pixels do not cross the network again; the least busy actor gets the next batch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np

from indexer.catalog.store import ModelIdentity
from indexer.decode import PhotoRead, read_bytes
from indexer.distributed.options import RayOptions
from indexer.distributed.progress import NodeRates
from indexer.errors import BadInput, ModelMismatch, Unavailable
from indexer.scan import FileEntry
from indexer.settings import Settings

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("indexer.distributed")

Choose = Callable[[list[PhotoRead]], list[PhotoRead]]
SameModel = Callable[[ModelIdentity, ModelIdentity, str], None]  # Library.check_same_model


@dataclass
class _Slot:
    """One embedding actor, where it runs, and how many batches it has out."""

    actor: object
    node_id: str
    label: str
    depth: int  # batches it may have out: enough to keep its node's CPUs decoding ahead of it
    out: int = 0
    pid: int = 0  # of its process now (it changes when Ray restarts the actor)


@dataclass
class _Job:
    slot: _Slot
    image_size: int
    items_ref: object  # the read task's input (bytes shipped by the driver live in its object store)
    shipped: int
    meta_ref: object
    pixels_ref: object
    reads: list[PhotoRead] | None = None
    picked: list[PhotoRead] = field(default_factory=list)
    vec_ref: object = None
    vectors: dict[str, np.ndarray] | None = None


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise BadInput(
            "--ray needs Ray on this machine and every node: pip install 'photoseek[ray]'"
        ) from exc
    return ray


class RayStage:
    """What the Writer takes instead of reading and embedding itself (Library.writer(ray=...))."""

    def __init__(self, options: RayOptions, settings: Settings, same_model: SameModel) -> None:
        """`same_model(expected, got, where)` raises ModelMismatch when a worker loaded another model."""
        self.options = options
        self.settings = settings
        self._same_model = same_model
        self.rates = NodeRates()
        self.slots: list[_Slot] = []
        self.actors = 0  # how many embedding actors this stage started (the summary says so after close)
        self._identity: ModelIdentity | None = None
        self._owns_connection = False

    # -- the cluster ----------------------------------------------------------------------------------
    def start(self, identity: ModelIdentity) -> None:
        """Connect, start the embedding actors and refuse any whose model is not `identity`."""
        if self.slots:
            assert self._identity is not None
            self._same_model(identity, self._identity, "this stage's actors")
            return
        ray = _ray()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.options.address,
                    namespace="photoseek",
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise Unavailable(
                    f"cannot reach a Ray cluster at {self.options.address} ({exc}): start one with "
                    f"`ray start --head` (docs/distributed.md), or give its HOST:PORT to --ray"
                ) from exc
            self._owns_connection = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from indexer.distributed.tasks import Embedder

        placed = actor_plan(ray.nodes(), self.options.actors)
        if not placed:
            raise Unavailable(
                f"the Ray cluster at {self.options.address} has no node with a CPU or GPU to embed on: "
                f"start a worker there with `ray start --address HEAD:PORT` (docs/distributed.md)"
            )
        per_node: dict[str, int] = {}
        for node_id, _gpus, _cpus in placed:
            per_node[node_id] = per_node.get(node_id, 0) + 1
        actors = []
        for node_id, gpus, cpus in placed:
            # soft: a restart may go elsewhere. A CPU actor keeps Ray's default resources (a CPU to be
            # placed, none held while it runs: the node's CPUs stay the read tasks'); naming any
            # resource would hold a CPU for its lifetime, and num_cpus=0 alone did not keep the node.
            where = NodeAffinitySchedulingStrategy(node_id, soft=True)
            needs = {"num_gpus": gpus, "num_cpus": 0} if gpus else {}
            actor = Embedder.options(scheduling_strategy=where, **needs).remote(self.settings)
            depth = max(1, cpus // per_node[node_id]) + 2
            actors.append((actor, depth))
        self.slots = [_Slot(a, "", "", depth) for a, depth in actors]
        self.actors = len(self.slots)
        self._identity = identity
        for slot in self.slots:
            try:
                worker = ray.get(slot.actor.describe.remote())  # type: ignore[attr-defined]
            except ray.exceptions.RayError as exc:
                self.close()
                raise Unavailable(f"an embedding actor could not load {self.settings.model}: {exc}") from exc
            slot.node_id, slot.label, slot.pid = worker.node_id, worker.label, worker.pid
            try:
                self._check(worker)
            except ModelMismatch:
                self.close()
                raise
        log.info("embedding on %s", ", ".join(f"{s.label} ({s.depth} batches ahead)" for s in self.slots))

    def _check(self, worker) -> None:
        assert self._identity is not None
        self._same_model(self._identity, worker.identity, f"the Ray worker {worker.label}")

    def close(self) -> None:
        """Stop the actors and disconnect (a connection this stage did not make is left open)."""
        if not self.slots and not self._owns_connection:
            return
        ray = _ray()
        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots = []
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False

    def report(self) -> str:
        return self.rates.report(self.actors)

    # -- the stream -----------------------------------------------------------------------------------
    def embedded(
        self,
        entries: Iterator[FileEntry],
        identity: ModelIdentity,
        image_size: int,
        choose: Choose,
        progress: tqdm | None = None,
    ) -> Iterator[tuple[list[PhotoRead], dict[str, np.ndarray]]]:
        """(reads, vectors of the contents `choose` picked) per batch of `entries`, in their order.
        `choose(reads)` is called in batch order and returns one read per content to embed."""
        self.start(identity)
        ray = _ray()
        self.rates.start()
        size = self.settings.batch_size
        parts = iter(lambda: list(islice(entries, size)), [])
        jobs: deque[_Job] = deque()
        more = True
        try:
            while True:
                while more and self._room(jobs):
                    part = next(parts, None)
                    if part is None:
                        more = False
                    else:
                        jobs.append(self._submit(ray, part, image_size))
                if not jobs:
                    return
                self._step(ray, jobs, choose)
                while jobs and jobs[0].vectors is not None:
                    job = jobs.popleft()
                    assert job.reads is not None
                    self.rates.add(job.slot.label, len(job.reads))
                    if progress is not None:
                        progress.set_postfix_str(self.rates.postfix(), refresh=False)
                    yield job.reads, job.vectors
        finally:
            for job in jobs:  # a stop or an error: what is out is dropped, nothing of it is committed
                for ref in (job.meta_ref, job.vec_ref):
                    if ref is not None:
                        ray.cancel(ref)
            if jobs:
                for slot in self.slots:
                    slot.out = 0

    def _room(self, jobs: deque[_Job]) -> bool:
        if not jobs:
            return True
        # Done batches wait behind a slow first one (a retried task): they count too, so what a killed
        # driver loses stays bounded.
        if len(jobs) >= 2 * sum(s.depth for s in self.slots):
            return False
        shipped = sum(j.shipped for j in jobs if j.reads is None)
        if shipped >= self.options.inflight_mb * 1e6:
            return False
        return any(s.out < s.depth for s in self.slots)

    def _submit(self, ray, part: list[FileEntry], image_size: int) -> _Job:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from indexer.distributed.tasks import Item, read_batch

        items: list[Item] = []
        shipped = 0
        for e in part:
            where = self.options.worker_path(e.path)
            if where is not None:
                items.append(Item(e.path, e.size, e.mtime, worker_path=where))
                continue
            r, data = read_bytes(e.path)  # what read_photo reads, here: the bytes travel, not the path
            items.append(Item(e.path, r.size, r.mtime, data=data, error=r.error))
            shipped += len(data or b"")
        self.rates.shipped += shipped
        slot = min(self.slots, key=lambda s: s.out / s.depth)
        slot.out += 1
        items_ref = ray.put(items)  # the driver's copy of the bytes goes now; the object store keeps one
        where = NodeAffinitySchedulingStrategy(slot.node_id, soft=True)
        meta_ref, pixels_ref = read_batch.options(num_returns=2, scheduling_strategy=where).remote(
            items_ref, image_size, self.settings.max_megapixels
        )
        return _Job(slot, image_size, items_ref, shipped, meta_ref, pixels_ref)

    def _step(self, ray, jobs: deque[_Job], choose: Choose) -> None:
        """Wait for any read or embedding to finish, then move every job on that can move."""
        waiting = [j.meta_ref for j in jobs if j.reads is None] + [j.vec_ref for j in jobs if j.vec_ref]
        ray.wait(waiting, num_returns=1)
        ready = set(ray.wait(waiting, num_returns=len(waiting), timeout=0)[0])
        in_order = True  # dedup goes in batch order: a job waits for the reads of those before it
        for job in jobs:
            if job.reads is None:
                if in_order and job.meta_ref in ready:
                    self._read_done(ray, job, choose)
                else:
                    in_order = False
            elif job.vec_ref is not None and job.vec_ref in ready:
                self._embed_done(ray, job)

    def _read_done(self, ray, job: _Job, choose: Choose) -> None:
        try:
            job.reads = ray.get(job.meta_ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as exc:
            job.reads, job.pixels_ref = self._read_alone(ray, job, exc)
        job.meta_ref = job.items_ref = None
        assert job.reads is not None
        ok = [r for r in job.reads if r.error is None]
        job.picked = choose(job.reads)
        if not job.picked:
            job.vectors, job.pixels_ref = {}, None
            job.slot.out -= 1
            return
        at = {id(r): k for k, r in enumerate(ok)}
        keep = [at[id(r)] for r in job.picked]
        job.vec_ref = job.slot.actor.embed.remote(job.pixels_ref, keep)  # type: ignore[attr-defined]

    def _embed_done(self, ray, job: _Job) -> None:
        vecs, worker = ray.get(job.vec_ref)
        self._check(worker)  # also the actor that came back on another node after a restart
        job.slot.node_id, job.slot.label, job.slot.pid = worker.node_id, worker.label, worker.pid
        job.vectors = {r.content_hash: v for r, v in zip(job.picked, vecs, strict=True)}  # type: ignore[misc]
        job.vec_ref = job.pixels_ref = None
        job.slot.out -= 1

    def _read_alone(self, ray, job: _Job, exc: Exception) -> tuple[list[PhotoRead], object]:
        """A read task that died every time it ran (a decoder that crashes its process): each file on
        its own, so only the culprit is marked, as the local read stage does (indexer/writer/read.py)."""
        from indexer.distributed.tasks import READ_RETRIES, read_batch

        log.warning(
            "a read task died %d times (%s); its files are read one by one",
            READ_RETRIES + 1,
            type(exc).__name__,
        )
        reads: list[PhotoRead] = []
        pixels: list[np.ndarray] = []
        for it in ray.get(job.items_ref):
            refs = read_batch.options(num_returns=2, max_retries=1).remote(
                [it], job.image_size, self.settings.max_megapixels
            )
            try:
                rs, px = ray.get(list(refs))
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as again:
                why = f"decoder crashed ({type(again).__name__})"
                rs, px = [PhotoRead(it.path, it.size, it.mtime, error=why)], None
            reads += rs
            if px is not None and len(px):
                pixels.append(px)
        return reads, ray.put(np.concatenate(pixels)) if pixels else None


def actor_plan(nodes: list[dict], wanted: int = 0) -> list[tuple[str, int, int]]:
    """(node id, GPUs, the node's CPUs) for each embedding actor to start: one per GPU where the
    cluster has GPUs, else one per node with CPUs; `wanted` > 0 spreads that many over those places."""
    alive = [n for n in nodes if n.get("Alive")]
    places: list[tuple[str, int, int]] = []
    for n in alive:
        res = n.get("Resources", {})
        places += [(n["NodeID"], 1, int(res.get("CPU", 0)))] * int(res.get("GPU", 0))
    if not places:
        cpus = [(n["NodeID"], int(n.get("Resources", {}).get("CPU", 0))) for n in alive]
        places = [(node, 0, c) for node, c in cpus if c >= 1]
    if wanted and places:
        places = [places[i % len(places)] for i in range(wanted)]
    return places
