"""Jobs on a real Redis queue shared by two `omnicoach worker` processes, on each database
engine (a SQLite file in the shared data dir; PostgreSQL). The conversation and schema tests
run on both engines in tests/test_db.py."""

import io
import re
import subprocess
import sys
import time

import pytest

from omnicoach.config import load_settings
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID
from omnicoach.files import FileStore
from omnicoach.jobs import store
from omnicoach.jobs.queue import JobQueue, open_huey
from tests.conftest import REPO, subprocess_env

JOBS = 6
# Two windows of a few tokens: after the model loads, a job takes a fraction of a second.
TEXT = "Breathe in, raise both arms; breathe out, fold forward and relax the neck."
PARAMS = {"model": "smollm2-135m-yoga", "window": 16, "stride": 8}
# What huey's consumer logs once per task it ran (its logger, at INFO in `omnicoach worker`).
EXECUTED = re.compile(r"omnicoach\.jobs\.queue\.run_job: \S+ executed in")
# What a worker logs as it starts a perplexity job.
STARTED = re.compile(r"^(job_\w+): scoring", re.MULTILINE)


def start_worker(log_path, settings) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "worker"],
            env=subprocess_env(
                data_dir=settings.data_dir,
                database_url=settings.database_url,
                job_queue_url=settings.job_queue_url,
            ),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for_log(process, log_path, pattern, timeout=180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, log_path.read_text()):
            return
        assert process.poll() is None, f"worker exited: {log_path.read_text()}"
        time.sleep(0.2)
    raise TimeoutError(f"no {pattern!r} in {log_path} after {timeout} s")


@pytest.mark.slow
def test_two_workers_share_a_redis_queue_and_run_each_job_once(
    redis_server, database_url, tmp_path
):
    settings = load_settings(
        data_dir=tmp_path, database_url=database_url, job_queue_url=redis_server.url
    )
    db = Database(settings.database)
    db.migrate()
    queue = JobQueue(settings)
    queue.huey.flush()  # the session's Redis is shared by this test's parameters
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_worker(log, settings) for log in logs]
    try:
        # Both consuming before any job is queued, so neither can take them all while the
        # other is still starting.
        for worker, log in zip(workers, logs, strict=True):
            wait_for_log(worker, log, "Huey consumer started")
        upload = FileStore(settings).save(
            db, LOCAL_USER_ID, io.BytesIO(TEXT.encode()), "breath.txt", "evals"
        )
        params = {"file_id": upload.id, **PARAMS}
        job_ids = [store.create(db, LOCAL_USER_ID, "perplexity", params).id for _ in range(JOBS)]
        for job_id in job_ids:
            queue.enqueue(job_id)

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            jobs = [store.get(db, LOCAL_USER_ID, job_id) for job_id in job_ids]
            if all(job.status in store.TERMINAL for job in jobs):
                break
            for worker, log in zip(workers, logs, strict=True):
                assert worker.poll() is None, f"worker exited: {log.read_text()}"
            time.sleep(0.3)
        else:
            pytest.fail(f"jobs unfinished: {[(j.id, j.status) for j in jobs]}")
    finally:
        for worker in workers:
            worker.terminate()
        codes = [worker.wait(30) for worker in workers]
    assert codes == [0, 0], "a worker did not stop cleanly on SIGTERM"

    for job in jobs:
        assert (job.status, job.error) == ("succeeded", None)
        assert job.result == jobs[0].result | {"seconds": job.result["seconds"]}
        # Ran once: one start line, each window's metric point once.
        lines = [log.line for log in store.recent_logs(db, job.id, 100)]
        assert sum(line.startswith("scoring breath.txt") for line in lines) == 1, lines
        windows = range(1, job.result["windows"] + 1)
        assert [point.step for point in store.metrics(db, job.id)] == list(windows)
    # Each job reached exactly one worker (which logs "job_…: scoring …"), both workers took
    # some, and huey delivered no task twice (a second delivery runs, finds the job taken).
    took = [STARTED.findall(log.read_text()) for log in logs]
    assert sorted(took[0] + took[1]) == sorted(job_ids) and took[0] and took[1], took
    assert sum(len(EXECUTED.findall(log.read_text())) for log in logs) == JOBS
    assert open_huey(settings).pending_count() == 0
    db.close()
