"""Generation jobs in the catalog: the SQL behind generation/jobs.py's queue. Functions take the
caller's Session; a transition is one conditional UPDATE, so two threads cannot both claim a job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from indexer.catalog.schema import GenerationJob


def first_with_status(s: Session, status: str) -> int | None:
    """The oldest job in `status` (the queue's head for "queued")."""
    return s.scalar(
        select(GenerationJob.id).where(GenerationJob.status == status).order_by(GenerationJob.id).limit(1)
    )


def count_with_status(s: Session, status: str) -> int:
    return s.scalar(select(func.count()).where(GenerationJob.status == status)) or 0


def status_counts(s: Session) -> dict[str, int]:
    rows = s.execute(select(GenerationJob.status, func.count()).group_by(GenerationJob.status))
    return {status: n for status, n in rows}


def add_job(s: Session, prompt: str, params: str, status: str, now: datetime) -> int:
    job = GenerationJob(prompt=prompt, params=params, status=status, created_at=now)
    s.add(job)
    s.flush()
    return job.id


def newest_jobs(s: Session, limit: int, before: int | None = None) -> list[GenerationJob]:
    """Up to `limit` jobs, newest first, with ids below `before` when given."""
    query = select(GenerationJob).order_by(GenerationJob.id.desc()).limit(limit)
    if before is not None:
        query = query.where(GenerationJob.id < before)
    return list(s.scalars(query))


def transition(s: Session, job_id: int, expected: str, **values: Any) -> bool:
    """Set `values` only if the job is still in status `expected`; True when it was."""
    done = s.execute(
        update(GenerationJob)
        .where(GenerationJob.id == job_id, GenerationJob.status == expected)
        .values(**values)
    )
    return bool(done.rowcount)


def set_values(s: Session, job_id: int, **values: Any) -> None:
    s.execute(update(GenerationJob).where(GenerationJob.id == job_id).values(**values))


def move_all(s: Session, from_status: str, **values: Any) -> list[int]:
    """Set `values` on every job in `from_status`; their ids."""
    ids = list(s.scalars(select(GenerationJob.id).where(GenerationJob.status == from_status)))
    if ids:
        s.execute(update(GenerationJob).where(GenerationJob.id.in_(ids)).values(**values))
    return ids
