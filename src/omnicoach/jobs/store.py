"""The jobs table: creating and reading jobs per user, and moving them through their states.

queued → running → succeeded | failed | cancelled, and running → queued again when the
worker running a job died (recovery.py). Every transition checks the state it starts from
inside its write transaction, so the server (cancel) and the workers (start, finish, take
back) can race without a job ever leaving a terminal state.
"""

import time
from collections.abc import Callable
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


def start(db: Database, job_id: str, worker: str | None = None) -> Job | None:
    """queued → running by WORKER (recorded with a first heartbeat, and one more attempt);
    None when the job must not run (cancelled while queued, gone, or already taken by another
    worker after a duplicate delivery)."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "queued":
            return None
        job.status, job.started_at = "running", time.time()
        job.worker, job.heartbeat_at = worker, job.started_at
        job.attempts = (job.attempts or 0) + 1
    return job


def beat(db: Database, job_id: str, worker: str) -> bool:
    """WORKER still runs the job: refresh its heartbeat. False once the job is not (or no
    longer) running in WORKER."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running" or job.worker != worker:
            return False
        job.heartbeat_at = time.time()
    return True


def running(db: Database) -> list[Job]:
    """Every running job, of every user and every worker."""
    with db.read() as session:
        return list(session.scalars(select(Job).where(Job.status == "running")))


def take_back(
    db: Database, job_id: str, orphaned: Callable[[Job], bool], max_attempts: int
) -> str | None:
    """running → queued for a job ORPHANED says its worker left (checked again inside the
    transaction); → cancelled when its cancellation was requested; → failed once it has been
    started MAX_ATTEMPTS times. Returns the new status, or None when the job was left alone
    (finished meanwhile, or its worker is alive). The caller enqueues a job put back in
    "queued"; a line in the job's log says what happened."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running" or not orphaned(job):
            return None
        gone = f"the worker running this job ({job.worker or 'unknown'}) stopped without a word"
        if job.cancel_requested:
            job.status, job.finished_at, line = "cancelled", time.time(), f"{gone}; cancelled"
        elif job.attempts >= max_attempts:
            job.status, job.finished_at = "failed", time.time()
            job.error = (
                f"the worker running this job died {job.attempts} times (killed, or out of "
                f"memory?); it is not run again (last worker: {job.worker or 'unknown'})"
            )
            line = f"{gone}; failed: {job.error}"
        else:
            job.status, job.worker, job.heartbeat_at = "queued", None, None
            line = (
                f"{gone}; queued again (attempt {job.attempts + 1} of {max_attempts}), to "
                "resume from its last checkpoint where it has one"
            )
        session.add(JobLog(job_id=job_id, line=line, created_at=time.time()))
        return job.status


def finish(
    db: Database,
    job_id: str,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    log: str | None = None,
    worker: str | None = None,
) -> None:
    """running → STATUS, with the job's last log line (e.g. a traceback) written alongside.
    Given WORKER, only while the job is still that worker's (not taken back meanwhile)."""
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running":  # e.g. marked failed when the worker stopped
            return
        if worker is not None and job.worker != worker:
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
