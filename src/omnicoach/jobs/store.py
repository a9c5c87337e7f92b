"""The jobs table: creating and reading jobs per user, and moving them through their states.

queued → running → succeeded | failed | cancelled. Every transition checks the state it
starts from inside its write transaction, so the server (cancel) and the worker (start,
finish) can race without a job ever leaving a terminal state.
"""

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from omnicoach.db import Database, owned
from omnicoach.db.schema import Job, JobLog, JobMetric

TERMINAL = ("succeeded", "failed", "cancelled")


def create(db: Database, user: str, kind: str, params: dict[str, Any]) -> Job:
    with db.write() as session:
        job = Job(user_id=user, kind=kind, params=params)
        session.add(job)
    return job


def list_for(db: Database, user: str, limit: int = 100) -> list[Job]:
    """The user's jobs, newest first."""
    with db.read() as session:
        query = (
            select(Job)
            .where(Job.user_id == user)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
        )
        return list(session.scalars(query))


def get(db: Database, user: str, job_id: str) -> Job:
    with db.read() as session:
        return owned(session, Job, job_id, user, "job")


def request_cancel(db: Database, user: str, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one when it next reports (the worker reads
    the flag); a finished one stays as it is."""
    with db.write() as session:
        job = owned(session, Job, job_id, user, "job")
        if job.status not in TERMINAL:
            job.cancel_requested = True
        if job.status == "queued":
            job.status, job.finished_at = "cancelled", time.time()
    return job


@dataclass
class Changes:
    """A job as it is now, with its log lines and metric points after the given ids."""

    job: Job
    logs: list[JobLog]
    metrics: list[JobMetric]


def changes(db: Database, job_id: str, log_after: int = 0, metric_after: int = 0) -> Changes:
    with db.read() as session:
        return Changes(
            session.get_one(Job, job_id),
            list(
                session.scalars(
                    select(JobLog)
                    .where(JobLog.job_id == job_id, JobLog.id > log_after)
                    .order_by(JobLog.id)
                )
            ),
            list(
                session.scalars(
                    select(JobMetric)
                    .where(JobMetric.job_id == job_id, JobMetric.id > metric_after)
                    .order_by(JobMetric.id)
                )
            ),
        )


def recent_logs(db: Database, job_id: str, limit: int) -> list[JobLog]:
    """The last LIMIT log lines, oldest first."""
    with db.read() as session:
        query = select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id.desc())
        return list(reversed(session.scalars(query.limit(limit)).all()))


def metrics(db: Database, job_id: str) -> list[JobMetric]:
    with db.read() as session:
        query = select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.id)
        return list(session.scalars(query))


# --- transitions made by the worker --------------------------------------------------------


def start(db: Database, job_id: str) -> Job | None:
    """queued → running; None when the job must not run (cancelled while queued, gone, or
    already taken by another worker after a duplicate delivery)."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "queued":
            return None
        job.status, job.started_at = "running", time.time()
    return job


def finish(
    db: Database,
    job_id: str,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    log: str | None = None,
) -> None:
    """running → STATUS, with the job's last log line (e.g. a traceback) written alongside."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running":  # e.g. marked failed when the worker stopped
            return
        job.status, job.result, job.error, job.finished_at = status, result, error, time.time()
        if status == "succeeded":
            job.progress = 1.0
        if log is not None:
            session.add(JobLog(job_id=job_id, line=log))


def fail(db: Database, job_id: str, error: str) -> None:
    """Any unfinished state → failed: for a job that could not be queued or was interrupted."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status in TERMINAL:
            return
        job.status, job.error, job.finished_at = "failed", error, time.time()
