"""Generation jobs for searchd: a queue persisted in the catalog, run one at a time by one thread.

A job's life: queued -> running -> done | failed | cancelled. The catalog row is the truth (so the
queue survives a restart: start() picks it up again); the running job's latest preview lives only in
memory. One worker thread owns the models: the CLIP encoder comes from the caller (searchd shares its
own), the VQGAN is loaded on the first job through the model cache (load_vqgan, the one place that
loads it) and let go after `idle_unload_s` without work, which gives the memory (GPU memory, on a GPU
box) back to search.

A job's params are GenerationOptions' (seed resolved at submit, so the list shows it) plus where its
pictures come from: "init_image_id" (a library image) or "init_upload" (a stored upload, see
generation.inputs); "#ID" parts of the prompt are library images too. Paths are never accepted.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from generation.inputs import (
    InputError,
    library_image_path,
    open_library_image,
    remove_upload,
    upload_path,
)
from generation.options import GenerationCancelled, GenerationOptions, cast_param
from generation.output import save_generated
from generation.prompts import parse_prompts
from generation.vqgan_spec import describe_vqgan
from indexer.catalog import Catalog, GenerationJob
from indexer.catalog import jobs as queries
from indexer.catalog.store import utcnow
from indexer.errors import Conflict, NotFound, TooMany
from indexer.layout import DataDir
from indexer.models import ModelCache

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
INTERRUPTED = "interrupted"  # the error of a job that was running when the process died
# Progress goes to the catalog when it moved by 1 % or a second passed, not on every step.
PROGRESS_WRITE_STEP = 0.01
PROGRESS_WRITE_S = 1.0
PREVIEWS_KEPT = 16  # jobs whose last preview stays in memory
DEFAULT_PREVIEWS_PER_JOB = 20  # when the job does not say (preview_every 0) ...
MAX_PREVIEW_EVERY = 10  # ... but at least every 10 steps, so a long job shows something early
CATALOG_RETRY_S = 5.0  # the worker's pause after the catalog failed it
MAX_QUEUED = 20  # jobs waiting at once; more are refused (HTTP 429) until some have run
MAX_PAGE = 100  # jobs per page of list_jobs
SOURCE_KEYS = ("init_image_id", "init_upload")  # where a job's pictures come from (not options)
FORBIDDEN_KEYS = ("init_image", "image_prompts")  # file paths: the CLI's, never a job's


class UnknownJob(NotFound):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no generation job {job_id}")
        self.job_id = job_id


class JobFinished(Conflict):
    """The job has already ended; there is nothing to cancel."""


class QueueFull(TooMany):
    """MAX_QUEUED jobs are waiting already; the message says so (HTTP 429)."""


class JobRunner:
    def __init__(
        self,
        catalog: Catalog,
        generated_dir: Path,
        encoder_provider: Callable[[], Any],
        vqgan_spec: str | None = None,
        on_result: Callable[[Path], None] | None = None,
        idle_unload_s: float = 600.0,
        inputs_dir: Path | None = None,
        max_queued: int = MAX_QUEUED,
        models: ModelCache | None = None,
    ) -> None:
        self.catalog = catalog
        self.generated_dir = Path(generated_dir)
        data_dir = DataDir(self.generated_dir.parent)
        self.inputs_dir = Path(inputs_dir) if inputs_dir else data_dir.generation_inputs
        self.encoder_provider = encoder_provider
        self.vqgan_spec = vqgan_spec or None  # "CONFIG.yaml,MODEL.ckpt"; None: the shipped tiny VQGAN
        self.vqgan_info = describe_vqgan(self.vqgan_spec)  # checks the files exist, at start-up
        self.max_queued = max_queued
        self.on_result = on_result  # e.g. hand the new PNG to the indexer straight away
        self.idle_unload_s = idle_unload_s  # the model cache lets the VQGAN go after this long unused
        self.models = models or ModelCache()  # the library's, in searchd: its follower sweeps idle models
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._cancel: set[int] = set()
        self._previews: OrderedDict[int, bytes] = OrderedDict()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> JobRunner:
        """Recover from a crash, and resume the queue if a previous process left one."""
        self.recover_interrupted()
        with self.catalog.session() as s:
            waiting = queries.first_with_status(s, QUEUED)
        if waiting is not None:
            self._ensure_worker()
        return self

    def _ensure_worker(self) -> None:
        # The thread starts with the first job, not with the app: a searchd that never generates
        # (and every test app) has no thread touching the catalog behind its back.
        with self._lock:
            if self._closing or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._work, name="photoseek-generation", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current step and join the worker; a running job goes back in the queue."""
        with self._lock:
            self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def recover_interrupted(self) -> int:
        """Jobs still "running" in the catalog died with a previous process: mark them failed."""
        with self.catalog.session() as s:
            ids = queries.move_all(s, RUNNING, status=FAILED, error=INTERRUPTED, finished_at=utcnow())
        for job_id in ids:
            self._forget_inputs(job_id)
        return len(ids)

    # -- API --------------------------------------------------------------------------------------
    def submit(self, prompt: str, params: dict[str, Any] | None = None) -> int:
        """Queue a job; ValueError (a message for the user) when prompt or params are invalid,
        QueueFull when max_queued jobs are waiting. The seed is drawn now when none is given."""
        params = dict(params or {})
        forbidden = [k for k in FORBIDDEN_KEYS if k in params]
        if forbidden:
            raise ValueError(
                f"{', '.join(forbidden)} would read files on the server: send an init image as an upload "
                "or init_image_id, and image prompts as #ID parts of the prompt"
            )
        sources = {k: params.pop(k) for k in SOURCE_KEYS if k in params and params[k] is not None}
        options = GenerationOptions.from_params(params).resolved()
        self._check_pictures(parse_prompts(prompt), sources)
        stored = {k: v for k, v in options.to_params().items() if k not in FORBIDDEN_KEYS} | sources
        with self._lock, self.catalog.session() as s:  # the lock: two submits cannot both take the last place
            waiting = queries.count_with_status(s, QUEUED)
            if waiting >= self.max_queued:
                raise QueueFull(
                    f"{waiting} generation jobs are waiting already (the limit is {self.max_queued}); "
                    "try again when some have finished, or cancel one"
                )
            job_id = queries.add_job(s, prompt, json.dumps(stored), QUEUED, utcnow())
        self._ensure_worker()
        self._wake.set()
        return job_id

    def _check_pictures(self, parts, sources: dict[str, Any]) -> None:
        """Fail at submit, not minutes later: the library ids exist and the upload is there."""
        if len(sources) > 1:
            raise ValueError("give one init image: init_image_id or an uploaded init_image, not both")
        if "init_image_id" in sources:
            sources["init_image_id"] = cast_param("init_image_id", "int", sources["init_image_id"])
            library_image_path(self.catalog, sources["init_image_id"])
        if "init_upload" in sources:
            upload_path(self.inputs_dir, sources["init_upload"])
        for part in parts:
            if part.image_id is not None:
                library_image_path(self.catalog, part.image_id)

    def get(self, job_id: int) -> dict[str, Any]:
        with self.catalog.session() as s:
            job = s.get(GenerationJob, job_id)
            if job is None:
                raise UnknownJob(job_id)
            return self._as_dict(job)

    def list_jobs(
        self, limit: int = 50, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of jobs, newest first, with ids below `before`; and the `before` of the next page."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.catalog.session() as s:
            rows = [self._as_dict(job) for job in queries.newest_jobs(s, limit + 1, before)]
        more = len(rows) > limit
        return rows[:limit], (rows[limit - 1]["id"] if more else None)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        with self.catalog.session() as s:
            return queries.status_counts(s)

    def cancel(self, job_id: int) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one stops after its current step."""
        # One conditional UPDATE, not read-then-write: the worker may claim the job in between.
        if self._transition(job_id, QUEUED, status=CANCELLED, finished_at=utcnow()):
            self._forget_inputs(job_id)
        else:
            status = self.get(job_id)["status"]
            if status in FINISHED:
                raise JobFinished(f"job {job_id} is already {status}")
            with self._lock:
                self._cancel.add(job_id)
        return self.get(job_id)

    def latest_preview(self, job_id: int) -> bytes | None:
        """PNG bytes: the newest preview of a running job, else the finished image, else None."""
        with self._lock:
            preview = self._previews.get(job_id)
        if preview is not None:
            return preview
        job = self.get(job_id)
        if job["status"] == DONE and job["result_path"] and Path(job["result_path"]).is_file():
            return Path(job["result_path"]).read_bytes()
        return None

    # -- the worker -------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            # Clear first, then look: a submit() or close() after this line sets the event again,
            # so the wait below cannot sleep through it.
            self._wake.clear()
            with self._lock:
                if self._closing:
                    return
            try:
                job_id = self._claim_next()
                if job_id is not None:
                    self._run(job_id)
                    continue
            except Exception:  # the catalog failed us (disk full, closed): pause and retry, never die
                log.exception("generation worker could not use the catalog")
                self._wake.wait(timeout=CATALOG_RETRY_S)
                continue
            self._wake.wait()  # until a submit() or close()

    def _claim_next(self) -> int | None:
        while True:
            with self.catalog.session() as s:
                job_id = queries.first_with_status(s, QUEUED)
            if job_id is None:
                return None
            if self._transition(job_id, QUEUED, status=RUNNING, progress=0.0):
                return job_id
            # cancelled between the two statements: look again

    def _transition(self, job_id: int, expected: str, **values: Any) -> bool:
        """Set `values` only if the job is still in status `expected`; True when it was."""
        with self.catalog.session() as s:
            return queries.transition(s, job_id, expected, **values)

    def _run(self, job_id: int) -> None:
        with self.catalog.session() as s:
            job = s.get(GenerationJob, job_id)
            assert job is not None
            prompt, params = job.prompt, json.loads(job.params or "{}")
        written = [0.0, time.monotonic()]  # progress last written, and when

        def progress(step: int, total: int, preview) -> None:
            if preview is not None:
                self._keep_preview(job_id, preview)
            fraction, now = step / total, time.monotonic()
            if fraction - written[0] >= PROGRESS_WRITE_STEP or now - written[1] >= PROGRESS_WRITE_S:
                written[:] = [fraction, now]
                self._set(job_id, progress=fraction)

        def should_stop() -> bool:
            with self._lock:
                return self._closing or job_id in self._cancel

        from generation.optimize import generate_image, record_params  # torch: only once a job runs

        try:
            sources = {k: params.pop(k) for k in SOURCE_KEYS if k in params}
            options = GenerationOptions.from_params(params)
            if not options.preview_every:
                every = min(MAX_PREVIEW_EVERY, max(1, options.steps // DEFAULT_PREVIEWS_PER_JOB))
                options = GenerationOptions.from_params({**params, "preview_every": every})
            options = replace(options, init_image=self._init_path(sources))
            encoder = self.encoder_provider()
            vqgan = self.load_vqgan(encoder.device)
            image = generate_image(
                encoder, vqgan, prompt, options, progress, should_stop,
                image_source=lambda image_id: open_library_image(self.catalog, image_id),
            )  # fmt: skip
            recorded = record_params(options, encoder, vqgan)
            recorded["init_image"] = _source_label(sources)
            path = save_generated(image, prompt, recorded, self.generated_dir)
        except GenerationCancelled as exc:
            with self._lock:
                closing = self._closing and job_id not in self._cancel
            if closing:  # searchd is stopping, nobody cancelled it: run it again after the restart
                log.info("generation job %d put back in the queue (shutting down)", job_id)
                self._set(job_id, status=QUEUED, progress=0.0)
            else:
                log.info("generation job %d cancelled: %s", job_id, exc)
                self._set(job_id, status=CANCELLED, finished_at=utcnow())
        except (InputError, ValueError) as exc:  # the job's pictures or numbers: the user's to fix
            log.info("generation job %d failed: %s", job_id, exc)
            self._set(job_id, status=FAILED, error=str(exc), finished_at=utcnow())
        except Exception as exc:  # a bad job must never take the worker (or searchd) down
            log.exception("generation job %d failed", job_id)
            self._set(job_id, status=FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
        else:
            self._set(job_id, progress=1.0, result_path=str(path))
            # Indexed before it is "done": a page that sees "done" and searches finds the image.
            if self.on_result is not None:
                try:
                    self.on_result(path)
                except Exception:
                    log.exception("on_result hook failed for %s", path)
            self._set(job_id, status=DONE, finished_at=utcnow())
        finally:
            with self._lock:
                self._cancel.discard(job_id)
            if self.get(job_id)["status"] in FINISHED:
                self._forget_inputs(job_id)

    def _init_path(self, sources: dict[str, Any]) -> str | None:
        if sources.get("init_upload"):
            return str(upload_path(self.inputs_dir, sources["init_upload"]))
        if sources.get("init_image_id") is not None:
            return str(library_image_path(self.catalog, int(sources["init_image_id"])))
        return None

    def _forget_inputs(self, job_id: int) -> None:
        """An ended job's upload is of no further use: remove it."""
        with self.catalog.session() as s:
            job = s.get(GenerationJob, job_id)
            stored = json.loads(job.params or "{}").get("init_upload") if job is not None else None
        remove_upload(self.inputs_dir, stored)

    def load_vqgan(self, device: str):
        """The VQGAN, through the model cache (indexer/models.py): loaded on first use, let go after
        idle_unload_s without a job, its memory (GPU memory on a GPU box) handed back to search."""
        from generation.vqgan import load_vqgan_spec  # torch: only once a job runs

        key = f"vqgan:{self.vqgan_spec or 'tiny'}@{device}"
        return self.models.get(key, lambda: load_vqgan_spec(self.vqgan_spec, device), self.idle_unload_s)

    def _keep_preview(self, job_id: int, image) -> None:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        with self._lock:
            self._previews[job_id] = buf.getvalue()
            self._previews.move_to_end(job_id)
            while len(self._previews) > PREVIEWS_KEPT:
                self._previews.popitem(last=False)

    def _set(self, job_id: int, **values: Any) -> None:
        with self.catalog.session() as s:
            queries.set_values(s, job_id, **values)

    @staticmethod
    def _as_dict(job: GenerationJob) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat() + "Z"

        return {
            "id": job.id,
            "prompt": job.prompt,
            "params": json.loads(job.params or "{}"),
            "status": job.status,
            "progress": job.progress,
            "result_path": job.result_path,
            "error": job.error,
            "created_at": iso(job.created_at),
            "finished_at": iso(job.finished_at),
        }


def _source_label(sources: dict[str, Any]) -> str | None:
    """What the PNG records as its init image: a library id or "upload", never a server path."""
    if sources.get("init_image_id") is not None:
        return f"#{int(sources['init_image_id'])}"
    return "upload" if sources.get("init_upload") else None
