"""Faults: a worker killed in the middle of a training job, and a disk that fills up during an
upload.

- The orphan rule (jobs/recovery.py) and the take-back transition, in process on a real
  SQLite file: which running jobs a starting worker runs again, and the limit on attempts.
- End to end: a real `omnicoach worker` trains a LoRA (train_sft), is killed with SIGKILL after
  its first checkpoint, and a new worker finishes the job from that checkpoint.
- ENOSPC while an upload is written (POST /v1/files, POST /train): 507 with OpenAI's error
  body, and no file, temporary file or database row left behind.
"""

import errno
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import BaseModel
from sqlalchemy import func, select

from omnicoach import files as files_module
from omnicoach.config import load_settings
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, Job, StoredFile
from omnicoach.files import FileStore
from omnicoach.jobs import recovery, store
from omnicoach.jobs.context import JobContext
from omnicoach.jobs.kinds import JobKind
from omnicoach.jobs.queue import JobQueue
from omnicoach.jobs.runner import JobRunner
from omnicoach.process_owner import this_host, this_process
from omnicoach.server.app import create_app
from tests.conftest import REPO, dead_process, subprocess_env

HOST = this_host()  # hostname/pid namespace


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data")


@pytest.fixture
def db(settings):
    database = Database(settings.database)
    database.migrate()
    yield database
    database.close()


def job_row(db, job_id) -> Job:
    return store.get(db, LOCAL_USER_ID, job_id)


def log_lines(db, job_id) -> list[str]:
    return [log.line for log in store.recent_logs(db, job_id, 1000)]


# --- the orphan rule ------------------------------------------------------------------------


def test_a_job_is_orphaned_when_its_worker_on_this_host_is_gone():
    now = time.time()
    me = this_process()
    assert me.startswith(f"{HOST}:{os.getpid()}:")
    fresh = dict(status="running", heartbeat_at=now)
    # A live worker keeps its job, whatever its heartbeat says (a long stretch in torch).
    assert not recovery.is_orphaned(Job(worker=me, **fresh), now)
    assert not recovery.is_orphaned(Job(worker=me, status="running", heartbeat_at=0.0), now)
    # Its process is gone: orphaned at once, however fresh the heartbeat.
    assert recovery.is_orphaned(Job(worker=dead_process(), **fresh), now)
    # Same pid, another process (a restarted container has the same pid): orphaned.
    pid, started = me.split(":")[1:]
    reused = f"{HOST}:{pid}:{float(started) - 100:.2f}"
    assert recovery.is_orphaned(Job(worker=reused, **fresh), now)
    # Started before workers recorded themselves: orphaned.
    assert recovery.is_orphaned(Job(worker=None, **fresh), now)


def test_a_job_of_another_host_is_orphaned_only_when_its_heartbeat_is_old():
    now = time.time()
    other = "elsewhere:4242:1700000000.00"
    never = lambda pid, started: pytest.fail("another host's pids mean nothing here")  # noqa: E731
    timeout = recovery.HEARTBEAT_TIMEOUT_S
    for heartbeat, orphaned in [
        (now, False),
        (now - timeout + 5, False),
        (now - timeout - 5, True),
    ]:
        job = Job(worker=other, status="running", heartbeat_at=heartbeat)
        assert recovery.is_orphaned(job, now, alive=never) is orphaned
    assert recovery.is_orphaned(Job(worker=other, status="running", heartbeat_at=None), now)
    # Same hostname, another pid namespace (containers with host networking): another host,
    # whose pids cannot be seen from here.
    pid, started = dead_process().split(":")[1:]
    twin = f"{socket.gethostname()}/1:{pid}:{started}"
    assert not recovery.is_orphaned(Job(worker=twin, status="running", heartbeat_at=now), now)
    # Seen from the host "elsewhere", the pid is what counts.
    job = Job(worker=other, status="running", heartbeat_at=0.0)
    assert not recovery.is_orphaned(job, now, host="elsewhere", alive=lambda pid, started: True)
    assert recovery.is_orphaned(job, now, host="elsewhere", alive=lambda pid, started: False)


def running_job(db, worker: str | None, **changes) -> str:
    """A job that WORKER started (and may since have died in)."""
    job_id = store.create(db, LOCAL_USER_ID, "count", {}).id
    store.start(db, job_id, worker)
    with db.write() as session:
        job = session.get_one(Job, job_id)
        for name, value in changes.items():
            setattr(job, name, value)
    return job_id


def test_a_starting_worker_takes_back_exactly_the_orphans(db):
    dead, alive = dead_process(), this_process()
    orphan = running_job(db, dead)
    live = running_job(db, alive)
    distant_live = running_job(db, "elsewhere:1:1.00")  # heartbeat just now
    distant_dead = running_job(db, "elsewhere:2:1.00", heartbeat_at=time.time() - 3600)
    queued = store.create(db, LOCAL_USER_ID, "count", {}).id
    cancelled = running_job(db, dead, cancel_requested=True)
    finished = running_job(db, dead)
    store.finish(db, finished, "succeeded", result={})

    enqueued = []
    outcomes = recovery.take_back_orphans(db, enqueued.append)

    assert outcomes == {orphan: "queued", distant_dead: "queued", cancelled: "cancelled"}
    assert sorted(enqueued) == sorted([orphan, distant_dead])
    for job_id in (orphan, distant_dead):
        job = job_row(db, job_id)
        assert job.status == "queued" and job.worker is None and job.attempts == 1
        assert "queued again (attempt 2 of 3)" in log_lines(db, job_id)[-1]
    assert dead in log_lines(db, orphan)[-1]  # which worker died is said
    for job_id, status in [(live, "running"), (distant_live, "running"), (queued, "queued")]:
        assert job_row(db, job_id).status == status
    assert job_row(db, finished).status == "succeeded"
    # Cancelled while its worker was dead: stays cancelled, never runs again.
    job = job_row(db, cancelled)
    assert job.status == "cancelled" and job.finished_at is not None
    assert log_lines(db, cancelled)[-1].endswith("cancelled")
    # A second look changes nothing.
    assert recovery.take_back_orphans(db, enqueued.append) == {}


def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(db):
    job_id = store.create(db, LOCAL_USER_ID, "count", {}).id
    for attempt in range(1, recovery.MAX_ATTEMPTS + 1):
        store.start(db, job_id, dead_process())  # started, then its worker dies
        assert job_row(db, job_id).attempts == attempt
        outcome = recovery.take_back_orphans(db, lambda _: None)[job_id]
        assert outcome == ("queued" if attempt < recovery.MAX_ATTEMPTS else "failed")
    job = job_row(db, job_id)
    assert job.status == "failed" and job.finished_at is not None
    assert job.error.startswith(f"the worker running this job died {recovery.MAX_ATTEMPTS} times")
    assert store.start(db, job_id, this_process()) is None  # never runs again


def test_a_job_that_cannot_be_queued_again_fails_clearly(db):
    job_id = running_job(db, dead_process())

    def queue_down(_job_id):
        raise ConnectionError("redis is away")

    assert recovery.take_back_orphans(db, queue_down) == {job_id: "failed"}
    assert job_row(db, job_id).error == "could not be queued again: ConnectionError: redis is away"


class WaitParams(BaseModel):
    seconds: float = 0.5


def wait(ctx: JobContext, params: WaitParams) -> dict:
    time.sleep(params.seconds)  # no report meanwhile: only the heartbeat thread writes
    return {"waited": params.seconds}


def test_the_runner_records_its_worker_and_beats_while_a_job_runs(settings, db, monkeypatch):
    monkeypatch.setattr(recovery, "HEARTBEAT_S", 0.05)
    runner = JobRunner(settings, db, kinds={"wait": JobKind("wait", "waits", WaitParams, wait)})
    job_id = store.create(db, LOCAL_USER_ID, "wait", {"seconds": 1.0}).id
    thread = threading.Thread(target=runner, args=(job_id,))
    thread.start()
    while job_row(db, job_id).status == "queued":
        time.sleep(0.01)
    first = job_row(db, job_id)
    assert first.worker == this_process() and first.attempts == 1
    time.sleep(0.5)
    assert job_row(db, job_id).heartbeat_at > first.heartbeat_at  # beats without reports
    assert not recovery.is_orphaned(job_row(db, job_id), time.time())
    thread.join(10)
    job = job_row(db, job_id)
    assert job.status == "succeeded" and job.result == {"waited": 1.0}


def test_a_job_taken_back_from_its_worker_is_not_finished_by_that_worker(db):
    job_id = running_job(db, "elsewhere:2:1.00", heartbeat_at=time.time() - 3600)
    recovery.take_back_orphans(db, lambda _: None)
    store.start(db, job_id, this_process())  # another worker runs it again
    store.finish(db, job_id, "failed", error="late", worker="elsewhere:2:1.00")  # the first
    assert job_row(db, job_id).status == "running"


def test_a_resumed_run_replaces_the_metric_points_after_its_checkpoint(settings, db, tmp_path):
    job = store.create(db, LOCAL_USER_ID, "count", {})
    ctx = JobContext(job, settings, db, registry=lambda: None)
    for step in range(1, 6):  # the run that died: steps 1-5 reported, checkpoint at 2
        ctx.metric("loss", step, 10.0 - step)
    ctx.flush()
    ctx.resume_from(tmp_path / "no-checkpoint")  # a first run: nothing to drop
    assert len(store.metrics(db, job.id)) == 5
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "progress.json").write_text(json.dumps({"step": 2}))
    ctx.resume_from(tmp_path / "checkpoint")
    assert [point.step for point in store.metrics(db, job.id)] == [1, 2]


# --- end to end: kill -9 in the middle of a training job, then a new worker ------------------

SFT_STEPS = 12


def start_worker(data_dir: Path, log_name: str) -> subprocess.Popen:
    with open(data_dir / log_name, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "worker"],
            env=subprocess_env(data_dir=data_dir),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until(condition, timeout: float, what: str, worker: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        if worker.poll() is not None:
            pytest.fail(
                f"the worker exited ({worker.returncode}) before {what}:\n{log.read_text()}"
            )
        time.sleep(0.1)
    pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_a_training_job_resumes_from_its_checkpoint_after_its_worker_is_killed(settings, db):
    data_dir = settings.data_dir
    rows = (REPO / "data" / "sft" / "train.jsonl").read_text().splitlines()[:12]
    upload = FileStore(settings).save(
        db, LOCAL_USER_ID, io.BytesIO(("\n".join(rows) + "\n").encode()), "chats.jsonl", "evals"
    )
    params = {
        "file_id": upload.id,
        "model": settings.chat_model,  # what POST /jobs fills in
        "max_steps": SFT_STEPS,
        "batch_size": 1,
        "max_length": 48,
        "checkpoint_every": 2,
    }
    job_id = store.create(db, LOCAL_USER_ID, "train_sft", params).id
    JobQueue(settings).enqueue(job_id)
    progress = settings.jobs_dir / job_id / "sft" / "checkpoint" / "progress.json"

    workers = [start_worker(data_dir, "worker-1.log")]
    try:
        first = workers[0]

        def checkpointed():
            return json.loads(progress.read_text())["step"] if progress.is_file() else None

        wait_until(checkpointed, 600, "checkpoint", first, data_dir / "worker-1.log")
        first.send_signal(signal.SIGKILL)  # no chance to write anything
        first.wait(30)
        saved = checkpointed()  # the checkpoint it left (written whole or not at all)
        assert 0 < saved < SFT_STEPS
        stuck = job_row(db, job_id)
        assert stuck.status == "running" and stuck.attempts == 1
        assert stuck.worker.startswith(f"{HOST}:{first.pid}:")
        assert not any("resumed" in line for line in log_lines(db, job_id))

        workers.append(second := start_worker(data_dir, "worker-2.log"))

        def finished():
            job = job_row(db, job_id)
            return job if job.status in store.TERMINAL else None

        job = wait_until(finished, 600, "finished job", second, data_dir / "worker-2.log")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()

    logs = log_lines(db, job_id)
    assert job.status == "succeeded", (job.error, logs[-5:])
    assert job.attempts == 2 and job.result["steps"] == SFT_STEPS
    assert job.worker.startswith(f"{HOST}:{second.pid}:")
    taken_back = [line for line in logs if "queued again" in line]
    assert len(taken_back) == 1 and "attempt 2 of 3" in taken_back[0]
    resumed = [int(m[1]) for line in logs if (m := re.search(r"resumed from step (\d+)", line))]
    assert resumed == [saved]  # from the checkpoint the killed worker left, not from 0
    assert logs.index(taken_back[0]) < logs.index(next(x for x in logs if "resumed" in x))
    steps = [point.step for point in store.metrics(db, job_id) if point.name == "loss"]
    assert steps == list(range(1, SFT_STEPS + 1))  # each step once, though two runs wrote
    assert set(job.artifacts) >= {"adapter.zip", "summary.json"}


# --- a full disk during an upload -----------------------------------------------------------


class FullDisk:
    """omnicoach.files' `os`, except that the disk fills up: the file being written takes
    ROOM bytes and then fails with ENOSPC (WHERE="write"), or everything is written and the
    final fsync fails (WHERE="fsync"), as a full disk may report it."""

    def __init__(self, where: str, room: int):
        self.where, self.room = where, room

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        real = os.fdopen(fd, mode, *args, **kwargs)
        if self.where == "write":
            real.write = self._limited(real.write)
        return real

    def fsync(self, fd):
        if self.where == "fsync":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)

    def _limited(self, write):
        def limited(data):
            room = self.room
            self.room = max(0, room - len(data))
            if len(data) > room:
                write(data[:room])  # what fitted stays in the temporary file
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(data)

        return limited


@pytest.fixture
def app_client(settings, db):
    """The app in process (no models, no lifespan) on its own data dir, as test_security.py."""
    app = create_app(settings)
    app.state.db, app.state.files = db, FileStore(settings)
    return TestClient(app)


def files_under(directory: Path) -> set[Path]:
    return {
        p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("omnicoach.db")
    }


def training_zip() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for i, colour in enumerate(["red", "orange", "blue"]):
            picture = io.BytesIO()
            Image.new("RGB", (40, 40), colour).save(picture, "PNG")
            archive.writestr(f"{i}.png", picture.getvalue())
    return data.getvalue()


LONG_TEXT = (
    "Breathe in, raise both arms; breathe out, fold forward.\n" * 40_000
).encode()  # 2.2 MB


@pytest.mark.parametrize("where", ["write", "fsync"])
@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/files", lambda: {"files": {"file": ("poses.txt", LONG_TEXT)}}),
        (
            "/train",
            lambda: {
                "files": {"file": ("pictures.zip", training_zip(), "application/zip")},
                "data": {"trigger": "zqxstyle"},
            },
        ),
    ],
)
def test_a_full_disk_during_an_upload_is_a_507_and_leaves_nothing(
    settings, db, app_client, monkeypatch, route, body, where
):
    """ENOSPC half-way through writing the upload, or at its final fsync."""
    request = body()
    name, content = request["files"]["file"][:2]
    before = files_under(settings.data_dir)
    with monkeypatch.context() as patch:
        patch.setattr(files_module, "os", FullDisk(where, room=len(content) // 2))
        response = app_client.post(route, **request)

    assert response.status_code == 507, response.text
    assert response.json() == {
        "error": {
            "message": "the disk is full: the file was not stored",
            "type": "server_error",
            "param": None,
            "code": "insufficient_storage",
        }
    }
    assert files_under(settings.data_dir) == before  # no blob, no temporary file
    assert not any((settings.files_dir / "incoming").iterdir())
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(StoredFile)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0

    # With room on the disk again the same bytes are stored (the failure was the disk's).
    again = app_client.post("/v1/files", files={"file": (name, content)})
    assert again.status_code == 200, again.text
    assert len(files_under(settings.data_dir) - before) == 1
