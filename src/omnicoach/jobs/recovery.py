"""Jobs whose worker died: taken back and run again, from their checkpoint where they have one.

A worker killed without a word (SIGKILL, the OOM killer, a power cut) leaves its job "running",
and huey took the job's id off the queue when the job started: nothing would ever run it again.
So a worker records itself on each job it starts (``jobs.worker``: host, pid and the process's
start time), refreshes ``jobs.heartbeat_at`` every HEARTBEAT_S while the job runs, and looks
for orphans when it starts and every SWEEP_S after. A running job is orphaned when

- it was started on this host and its process is gone (no such pid, a zombie, or a pid now
  used by a later process: the start time differs), or
- it was started on another host and its heartbeat is older than HEARTBEAT_TIMEOUT_S (that
  host cannot be asked), or
- it names no worker (started before workers recorded themselves).

"This host" is the hostname and the pid namespace: two containers that share a hostname
(host networking) cannot see each other's pids, so each is another host to the other.

A job running in a live worker is never touched: with one worker (the default) every job left
running is an orphan when the worker restarts; with several (a Redis queue) each one only
takes back the jobs of workers that are gone.

An orphan goes back to "queued" and onto the queue, with a line in its log; the training kinds
resume from their checkpoint (same job folder). A job started MAX_ATTEMPTS times fails instead,
so a job that kills its worker cannot loop forever; an orphan whose cancellation was requested
is cancelled. (SIGTERM is not a death: the worker marks its job failed, "interrupted".)
"""

import logging
import os
import platform
import time
from collections.abc import Callable

import psutil

from omnicoach.db import Database
from omnicoach.db.schema import Job
from omnicoach.jobs import store

logger = logging.getLogger("omnicoach.jobs")

HEARTBEAT_S = 30.0  # a running job's worker refreshes jobs.heartbeat_at this often
HEARTBEAT_TIMEOUT_S = 180.0  # a job of another host with an older heartbeat is orphaned
SWEEP_S = 30.0  # a worker looks for orphans when it starts and this often after
MAX_ATTEMPTS = 3  # starts of one job before a worker death fails it


def this_host() -> str:
    """The hostname, with the pid namespace where Linux shows it ("name/4026531836")."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return platform.node()
    return f"{platform.node()}/{namespace.strip('pid:[]')}"


def this_worker() -> str:
    """This process as jobs.worker records it: "host:pid:start time"."""
    process = psutil.Process()
    return f"{this_host()}:{process.pid}:{process.create_time():.2f}"


def process_alive(pid: int, started: str) -> bool:
    """Whether the process PID that started at STARTED (as this_worker writes it) still runs."""
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE and f"{process.create_time():.2f}" == started
        )
    except psutil.NoSuchProcess:  # a zombie too
        return False
    except psutil.AccessDenied:  # exists, someone else's: assume it is the worker
        return True


def is_orphaned(
    job: Job,
    now: float,
    host: str | None = None,
    alive: Callable[[int, str], bool] = process_alive,
) -> bool:
    """The rule above, for a running JOB seen at NOW from a worker on HOST (default: this)."""
    if not job.worker:
        return True
    worker_host, pid, started = _parse(job.worker)
    if worker_host == (host or this_host()) and pid is not None:
        return not alive(pid, started)
    return job.heartbeat_at is None or now - job.heartbeat_at > HEARTBEAT_TIMEOUT_S


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


def _parse(worker: str) -> tuple[str, int | None, str]:
    host, _, rest = worker.partition(":")
    pid, _, started = rest.partition(":")
    return host, int(pid) if pid.isdigit() else None, started
