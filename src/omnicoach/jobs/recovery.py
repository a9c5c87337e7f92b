"""Jobs whose worker died: taken back and run again, from their checkpoint where they have one.

A worker killed without a word (SIGKILL, the OOM killer, a power cut) leaves its job "running",
and huey took the job's id off the queue when the job started: nothing would ever run it again.
So a worker records itself on each job it starts (``jobs.worker``: host, pid and the process's
start time), refreshes ``jobs.heartbeat_at`` every HEARTBEAT_S while the job runs, and looks
for orphans when it starts and every SWEEP_S after. A running job is orphaned when its worker
is gone (omnicoach/process_owner.py: on this host, its process is gone; on another host, its
heartbeat is older than HEARTBEAT_TIMEOUT_S; or it names no worker).

A job running in a live worker is never touched: with one worker (the default) every job left
running is an orphan when the worker restarts; with several (a Redis queue) each one only
takes back the jobs of workers that are gone.

An orphan goes back to "queued" and onto the queue, with a line in its log; the training kinds
resume from their checkpoint (same job folder). A job started MAX_ATTEMPTS times fails instead,
so a job that kills its worker cannot loop forever; an orphan whose cancellation was requested
is cancelled. (SIGTERM is not a death: the worker marks its job failed, "interrupted".)
"""

import logging
import time
from collections.abc import Callable

from omnicoach.db import Database
from omnicoach.db.schema import Job
from omnicoach.jobs import store
from omnicoach.process_owner import is_gone, process_alive

logger = logging.getLogger("omnicoach.jobs")

HEARTBEAT_S = 30.0  # a running job's worker refreshes jobs.heartbeat_at this often
HEARTBEAT_TIMEOUT_S = 180.0  # a job of another host with an older heartbeat is orphaned
SWEEP_S = 30.0  # a worker looks for orphans when it starts and this often after
MAX_ATTEMPTS = 3  # starts of one job before a worker death fails it


def is_orphaned(
    job: Job,
    now: float,
    host: str | None = None,
    alive: Callable[[int, str], bool] = process_alive,
) -> bool:
    """The rule above, for a running JOB seen at NOW from a worker on HOST (default: this)."""
    return is_gone(job.worker, job.heartbeat_at, now, HEARTBEAT_TIMEOUT_S, host, alive)


def take_back_orphans(
    db: Database, enqueue: Callable[[str], None], max_attempts: int = MAX_ATTEMPTS
) -> dict[str, str]:
    """Put every orphaned running job back on the queue (or cancel or fail it, see
    store.take_back); returns {job id: its new status}."""
    outcomes = {}
    for job in store.running(db):
        status = store.take_back(
            db, job.id, lambda row: is_orphaned(row, time.time()), max_attempts
        )
        if status is None:
            continue
        outcomes[job.id] = status
        logger.warning("%s: its worker %s is gone; now %s", job.id, job.worker, status)
        if status == "queued":
            try:
                enqueue(job.id)
            except Exception as exc:  # the queue is down: say so on the job, not only here
                store.fail(db, job.id, f"could not be queued again: {type(exc).__name__}: {exc}")
                outcomes[job.id] = "failed"
    return outcomes
