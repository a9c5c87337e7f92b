"""Jobs: the runner and queue in-process with small test kinds, then the whole path (server,
real `omnicoach worker`, the perplexity kind) end to end."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from huey import RedisHuey, SqliteHuey
from pydantic import BaseModel

from omnicoach.config import load_settings
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, Job
from omnicoach.errors import ConfigError, NotFoundError
from omnicoach.jobs import store
from omnicoach.jobs.context import JobContext
from omnicoach.jobs.kinds import JobKind
from omnicoach.jobs.queue import JobQueue, open_huey
from omnicoach.jobs.runner import JobRunner
from tests.conftest import REPO, subprocess_env
from tests.server_process import ServerProcess, free_port
from tests.test_perplexity import ENGLISH


class CountParams(BaseModel):
    steps: int = 3
    fail_at: int | None = None
    seconds_per_step: float = 0.0


def count(ctx: JobContext, params: CountParams) -> dict:
    """Counts to STEPS, reporting each step; fails at FAIL_AT when given."""
    ctx.log(f"counting to {params.steps}")
    for step in range(1, params.steps + 1):
        if step == params.fail_at:
            raise ValueError(f"no step {step} today")
        ctx.metric("square", step, step * step)
        ctx.progress(step / params.steps)
        time.sleep(params.seconds_per_step)
    ctx.add_artifact("count.json").write_text(json.dumps({"counted": params.steps}))
    ctx.log("done")
    return {"counted": params.steps}


KINDS = {"count": JobKind("count", "counts", CountParams, count)}


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path)


@pytest.fixture
def db(settings):
    database = Database(settings.database)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def runner(settings, db):
    return JobRunner(settings, db, kinds=KINDS)


def new_job(db, kind="count", **params) -> str:
    return store.create(db, LOCAL_USER_ID, kind, params).id


def job_row(db, job_id) -> Job:
    return store.get(db, LOCAL_USER_ID, job_id)


def test_the_queue_is_sqlite_under_data_dir_by_default_and_redis_by_url(settings, tmp_path):
    huey = open_huey(settings)
    assert isinstance(huey, SqliteHuey)
    assert (tmp_path / "jobs-queue.db").is_file()
    redis = open_huey(settings.model_copy(update={"job_queue_url": "redis://localhost:6379/3"}))
    assert isinstance(redis, RedisHuey)  # connects lazily: no server needed to build it
    with pytest.raises(ConfigError, match="Redis URL"):
        open_huey(settings.model_copy(update={"job_queue_url": "amqp://localhost"}))


def test_a_queued_job_runs_and_reports_everything(settings, db, runner):
    queue = JobQueue(settings, runner)
    queue.huey.immediate = True  # the task runs inside enqueue(), as a worker would run it
    job_id = new_job(db, steps=3)
    queue.enqueue(job_id)

    job = job_row(db, job_id)
    assert job.status == "succeeded" and job.progress == 1.0 and job.error is None
    assert job.result == {"counted": 3}
    assert job.started_at <= job.finished_at
    assert job.artifacts == ["count.json"]
    assert json.loads((settings.jobs_dir / job_id / "count.json").read_text()) == {"counted": 3}
    assert [log.line for log in store.recent_logs(db, job_id, 10)] == ["counting to 3", "done"]
    assert [(m.name, m.step, m.value) for m in store.metrics(db, job_id)] == [
        ("square", 1, 1.0),
        ("square", 2, 4.0),
        ("square", 3, 9.0),
    ]


def test_a_failing_job_keeps_its_error_and_traceback(db, runner):
    job_id = new_job(db, steps=5, fail_at=3)
    runner(job_id)
    job = job_row(db, job_id)
    assert job.status == "failed"
    assert job.error == "ValueError: no step 3 today"
    assert job.progress == pytest.approx(2 / 5)  # what it reached, written on failure
    assert [m.step for m in store.metrics(db, job_id)] == [1, 2]
    first, last = [log.line for log in store.recent_logs(db, job_id, 10)]
    assert first == "counting to 5"
    assert "Traceback" in last and "no step 3 today" in last


def test_a_job_of_an_unknown_kind_fails_clearly(db, runner):
    job_id = new_job(db, kind="retired")
    runner(job_id)
    assert "does not know the job kind 'retired'" in job_row(db, job_id).error


def test_a_job_cancelled_while_queued_never_runs(db, runner):
    job_id = new_job(db)
    assert store.request_cancel(db, LOCAL_USER_ID, job_id).status == "cancelled"
    runner(job_id)
    job = job_row(db, job_id)
    assert job.status == "cancelled" and job.started_at is None
    assert store.recent_logs(db, job_id, 10) == []


def test_a_running_job_stops_soon_after_cancel(db, runner):
    job_id = new_job(db, steps=1000, seconds_per_step=0.01)  # 10 s if left alone
    worker = threading.Thread(target=runner, args=(job_id,))
    worker.start()
    while job_row(db, job_id).progress == 0:
        time.sleep(0.05)
    cancelled_at = time.monotonic()
    assert store.request_cancel(db, LOCAL_USER_ID, job_id).status == "running"
    worker.join(timeout=10)
    assert time.monotonic() - cancelled_at < 2
    job = job_row(db, job_id)
    assert job.status == "cancelled" and job.cancel_requested and 0 < job.progress < 1
    assert store.recent_logs(db, job_id, 1)[0].line == "cancelled"
    # A finished job stays finished.
    assert store.request_cancel(db, LOCAL_USER_ID, job_id).status == "cancelled"


def test_progress_writes_are_throttled_but_nothing_is_lost(db, runner, monkeypatch):
    flushes = []
    real_flush = JobContext.flush

    def counted_flush(ctx):
        flushes.append(ctx.job_id)
        return real_flush(ctx)

    monkeypatch.setattr(JobContext, "flush", counted_flush)
    job_id = new_job(db, steps=2000)  # 4000 reports in well under a second
    runner(job_id)
    assert len(flushes) < 10
    assert len(store.metrics(db, job_id)) == 2000


def test_a_job_interrupted_by_the_worker_stopping_is_failed(db, runner):
    job_id = new_job(db)
    store.start(db, job_id)
    runner.interrupted(job_id)
    job = job_row(db, job_id)
    assert job.status == "failed" and "interrupted" in job.error
    store.finish(db, job_id, "succeeded", result={})  # the job thread ending later changes nothing
    assert job_row(db, job_id).status == "failed"


def test_artifact_names_are_plain_file_names(settings, db):
    job = store.create(db, LOCAL_USER_ID, "count", {})
    ctx = JobContext(job, settings, db, registry=lambda: None)
    for bad in ("../escape.txt", "a/b.txt", "", ".."):
        with pytest.raises(ValueError, match="plain file name"):
            ctx.add_artifact(bad)
    assert ctx.add_artifact("ok.txt") == settings.jobs_dir / job.id / "ok.txt"


def test_jobs_are_per_user(db):
    job_id = new_job(db)
    with pytest.raises(NotFoundError, match="no job"):
        store.get(db, "someone-else", job_id)
    with pytest.raises(NotFoundError, match="no job"):
        store.request_cancel(db, "someone-else", job_id)


# --- end to end: a real server, a real `omnicoach worker`, the perplexity kind ---------------

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"
# The smallest valid PNG (1×1): an upload that is not text.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
LONG_TEXT = " ".join([ENGLISH] * 20)  # ~2,200 tokens: at stride 8, far longer than a test waits


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs-e2e")


@pytest.fixture(scope="module")
def server(e2e_dir):
    with ServerProcess(
        e2e_dir / "server.log", data_dir=e2e_dir, api_keys=f"{ALICE},{BOB}"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def worker(server, e2e_dir):
    """Started after the server, which has migrated the database by then."""
    with open(e2e_dir / "worker.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "worker"],
            env=subprocess_env(data_dir=e2e_dir, api_keys=f"{ALICE},{BOB}"),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        yield process
        process.terminate()
        assert process.wait(15) == 0, "the worker did not stop cleanly on SIGTERM"


def client(server, key) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def alice(server):
    with client(server, ALICE) as http:
        yield http


@pytest.fixture(scope="module")
def bob(server):
    with client(server, BOB) as http:
        yield http


def upload(http, text: str | bytes, name="yoga.txt") -> str:
    content = text.encode() if isinstance(text, str) else text
    response = http.post("/v1/files", files={"file": (name, content)}, data={"purpose": "evals"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create_job(http, **params) -> dict:
    response = http.post("/jobs", json={"kind": "perplexity", "params": params})
    assert response.status_code == 201, response.text
    return response.json()


def follow(http, job_id, timeout=60) -> list[tuple[str, dict]]:
    """All (event, data) pairs of GET /jobs/{id}/events until the stream ends."""
    events, name = [], None
    deadline = time.monotonic() + timeout  # keep-alive pings would outlast a read timeout
    with http.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"job {job_id} still running: {events[-3:]}"
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def wait_for(http, job_id, done, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never got there: {job}")


@pytest.mark.slow
def test_perplexity_job_from_upload_to_artifact(alice, worker):
    file_id = upload(alice, ENGLISH)
    created = create_job(alice, file_id=file_id, window=64, stride=32)
    assert created["status"] == "queued" and created["progress"] == 0
    assert created["worker"] is None and created["attempts"] == 0
    assert created["params"] == {
        "file_id": file_id,
        "model": "smollm2-135m-yoga",  # the default, recorded
        "window": 64,
        "stride": 32,
    }

    events = follow(alice, created["id"])
    kinds = [name for name, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    progress = [data["progress"] for name, data in events if name in ("job", "done")]
    assert progress == sorted(progress) and progress[-1] == 1.0
    final = events[-1][1]
    assert final["status"] == "succeeded" and final["error"] is None
    # Run once, by the test's worker process (host:pid:start time), which beat at least once.
    assert final["attempts"] == 1 and f":{worker.pid}:" in final["worker"]
    assert final["started_at"] <= final["heartbeat_at"] <= final["finished_at"]
    result = final["result"]
    assert 1 < result["perplexity"] < 100 and result["tokens_scored"] > 100
    assert result["windows"] == 3
    points = [data for name, data in events if name == "metric"]
    assert [p["step"] for p in points] == [1, 2, 3]
    assert points[-1]["value"] == pytest.approx(result["perplexity"])
    assert any("perplexity" in data["line"] for name, data in events if name == "log")

    job = alice.get(f"/jobs/{created['id']}").json()
    assert [p["step"] for p in job["metrics"]["perplexity"]] == [1, 2, 3]
    assert job["logs"] and job["artifacts"] == ["perplexity.json"]
    assert job["started_at"] <= job["finished_at"]
    artifact = alice.get(f"/jobs/{created['id']}/artifacts/perplexity.json")
    assert artifact.status_code == 200 and artifact.json() == result
    assert alice.get("/jobs").json()["data"][0]["id"] == created["id"]


@pytest.mark.slow
def test_router_training_job_from_an_uploaded_jsonl(alice, worker):
    rows = (REPO / "data" / "router" / "train.jsonl").read_text().splitlines()[:60]
    file_id = upload(alice, "\n".join(rows) + "\n", name="prompts.jsonl")
    params = {"file_id": file_id, "epochs": 1, "max_steps": 2}
    response = alice.post("/jobs", json={"kind": "train_router", "params": params})
    assert response.status_code == 201, response.text
    events = follow(alice, response.json()["id"], timeout=180)
    final = events[-1][1]
    assert final["status"] == "succeeded", final
    assert final["result"]["evaluated_on"] == "validation"  # an upload has no test split
    assert 0 <= final["result"]["accuracy"] <= 1
    job = alice.get(f"/jobs/{final['id']}").json()
    assert [p["step"] for p in job["metrics"]["loss"]] == [1, 2]
    assert [p["step"] for p in job["metrics"]["validation_accuracy"]] == [1]
    assert job["artifacts"] == ["router.zip", "manifest.json"]
    manifest = alice.get(f"/jobs/{final['id']}/artifacts/manifest.json").json()
    assert manifest["name"] == "router" and "head.safetensors" in manifest["files"]

    bad = upload(alice, '{"prompt": "draw a cat", "label": "cat picture"}\n', name="bad.jsonl")
    response = alice.post("/jobs", json={"kind": "train_router", "params": {"file_id": bad}})
    error = assert_error(response, 400, "params.file_id")
    assert "bad.jsonl:1" in error["message"]


@pytest.mark.slow
def test_sft_job_fine_tunes_the_chat_model_on_an_upload(alice, worker):
    rows = (REPO / "data" / "sft" / "train.jsonl").read_text().splitlines()[:12]
    file_id = upload(alice, "\n".join(rows) + "\n", name="chats.jsonl")
    params = {"file_id": file_id, "max_steps": 2, "batch_size": 2, "max_length": 64}
    response = alice.post("/jobs", json={"kind": "train_sft", "params": params})
    assert response.status_code == 201, response.text
    assert response.json()["params"]["model"] == "smollm2-135m-yoga"  # trains its base
    final = follow(alice, response.json()["id"], timeout=300)[-1][1]
    assert final["status"] == "succeeded", final
    assert final["result"]["method"] == "LoRA on the fp32 base" and final["result"]["steps"] == 2
    job = alice.get(f"/jobs/{final['id']}").json()
    assert [p["step"] for p in job["metrics"]["loss"]] == [1, 2]
    assert [p["step"] for p in job["metrics"]["validation_loss"]] == [2]
    assert job["artifacts"] == ["adapter.zip", "loss.csv", "loss.png", "summary.json"]

    bad = upload(alice, '{"messages": [{"role": "user", "content": "hi"}]}\n', name="no.jsonl")
    response = alice.post("/jobs", json={"kind": "train_sft", "params": {"file_id": bad}})
    assert "no.jsonl:1" in assert_error(response, 400, "params.file_id")["message"]


@pytest.mark.slow
def test_asr_job_teaches_speech_to_text_the_callers_own_words(alice, worker):
    words = "Today we practise Tadasana.\nHold Vrksasana for five breaths.\nNow Utkatasana.\n"
    file_id = upload(alice, words, name="words.txt")
    params = {"file_id": file_id, "voices_per_line": 2, "epochs": 1, "batch_size": 2}
    response = alice.post("/jobs", json={"kind": "train_asr", "params": params})
    assert response.status_code == 201, response.text
    final = follow(alice, response.json()["id"], timeout=300)[-1][1]
    assert final["status"] == "succeeded", final
    assert final["result"]["clips"] == {"train": 4, "validation": 2}
    assert 0 <= final["result"]["validation_wer"] <= 2
    job = alice.get(f"/jobs/{final['id']}").json()
    assert [p["step"] for p in job["metrics"]["loss"]] == [1, 2]  # 4 clips in batches of 2
    assert [p["step"] for p in job["metrics"]["validation_wer"]] == [1]
    assert job["artifacts"] == ["asr.zip", "manifest.json"]
    assert (Path(final["result"]["model_dir"]) / "model.bin").is_file()  # ready to serve

    bad = upload(alice, "only one line\n", name="few.txt")
    response = alice.post("/jobs", json={"kind": "train_asr", "params": {"file_id": bad}})
    assert (
        "few.txt needs at least two sentences"
        in assert_error(response, 400, "params.file_id")["message"]
    )


@pytest.mark.slow
def test_pretrain_job_trains_from_scratch_and_reports(alice, worker):
    params = {"max_steps": 2, "synthetic_workers": 0, "synthetic_share": 0}
    response = alice.post("/jobs", json={"kind": "pretrain", "params": params})
    assert response.status_code == 201, response.text
    final = follow(alice, response.json()["id"], timeout=600)[-1][1]
    assert final["status"] == "succeeded", final
    result = final["result"]
    assert result["steps"] == 2 and result["reference_heldout_loss"] < result["heldout_loss"]
    job = alice.get(f"/jobs/{final['id']}").json()
    assert [p["step"] for p in job["metrics"]["loss"]] == [1, 2]
    assert set(job["artifacts"]) >= {"loss.png", "report.md", "manifest.json"}
    response = alice.post("/jobs", json={"kind": "pretrain", "params": {"synthetic_workers": 0}})
    assert "synthetic worker" in assert_error(response, 422, "params")["message"]


@pytest.mark.slow
def test_a_running_job_is_cancelled(alice, worker):
    created = create_job(alice, file_id=upload(alice, LONG_TEXT), window=64, stride=8)
    wait_for(alice, created["id"], lambda job: job["progress"] > 0)
    cancelling = alice.post(f"/jobs/{created['id']}/cancel").json()
    assert cancelling["status"] == "running" and cancelling["cancel_requested"]
    job = wait_for(alice, created["id"], lambda job: job["status"] != "running", timeout=10)
    assert job["status"] == "cancelled" and 0 < job["progress"] < 1
    name, final = follow(alice, created["id"])[-1]
    assert name == "done" and final["status"] == "cancelled"


def assert_error(response, status, param, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    if code:
        assert error["code"] == code
    return error


@pytest.mark.slow
def test_bad_requests_answer_openai_errors(alice, bob):
    file_id = upload(alice, ENGLISH)
    post = alice.post

    error = assert_error(post("/jobs", json={"kind": "nap"}), 400, "kind", "unknown_job_kind")
    assert "perplexity" in error["message"]
    for params, param in [
        ({}, "params.file_id"),
        ({"file_id": file_id, "window": "wide"}, "params.window"),
        ({"file_id": file_id, "window": 64, "stride": 64}, "params.stride"),
        ({"file_id": file_id, "windw": 64}, "params.windw"),
    ]:
        assert_error(post("/jobs", json={"kind": "perplexity", "params": params}), 422, param)
    body = {"kind": "perplexity", "params": {"file_id": file_id, "model": "gpt-9"}}
    assert_error(post("/jobs", json=body), 404, "params.model", "model_not_found")
    png = upload(alice, PNG, name="pose.png")
    body = {"kind": "perplexity", "params": {"file_id": png}}
    assert "text" in assert_error(post("/jobs", json=body), 400, "params.file_id")["message"]

    # Someone else's file or job is as missing as one that never existed.
    body = {"kind": "perplexity", "params": {"file_id": file_id}}
    assert_error(bob.post("/jobs", json=body), 404, "params.file_id", "file_not_found")
    job_id = create_job(alice, file_id=file_id)["id"]
    for response in (
        bob.get(f"/jobs/{job_id}"),
        bob.get(f"/jobs/{job_id}/events"),
        bob.post(f"/jobs/{job_id}/cancel"),
        bob.get(f"/jobs/{job_id}/artifacts/perplexity.json"),
        alice.get("/jobs/job_0000"),
    ):
        assert_error(response, 404, None, "job_not_found")
    assert job_id not in [job["id"] for job in bob.get("/jobs").json()["data"]]
    for name in ("server.log", "..%2Fserver.log", "nothing.json"):
        assert alice.get(f"/jobs/{job_id}/artifacts/{name}").status_code == 404
    assert_error(httpx.get(f"{alice.base_url}/jobs"), 401, None, "invalid_api_key")


@pytest.mark.slow
def test_serve_with_worker_runs_jobs_and_stops_its_worker(tmp_path):
    """`serve --worker` on a new data dir: the child worker runs a job; stopping the server
    stops the worker, and the job it was running is marked interrupted."""
    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "serve", "--worker", "--port", str(port)],
            env=subprocess_env(data_dir=tmp_path),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                wait_until_serving(http, server)
                [worker] = psutil.Process(server.pid).children()
                assert worker.cmdline()[-1] == "worker"
                job_id = create_job(http, file_id=upload(http, LONG_TEXT), window=64, stride=8)[
                    "id"
                ]
                wait_for(http, job_id, lambda job: job["progress"] > 0)
        finally:
            server.terminate()
            server.wait(30)
    assert server.returncode == 0
    assert not worker.is_running()
    db = Database(load_settings(data_dir=tmp_path).database)
    job = store.get(db, LOCAL_USER_ID, job_id)
    db.close()
    assert job.status == "failed" and "interrupted" in job.error


def wait_until_serving(http, process, timeout=180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if http.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise TimeoutError("the server did not start")


@pytest.mark.slow
def test_vlm_job_trains_both_stages_on_rendered_images(alice, worker, e2e_dir):
    params = {"per_exercise": 2, "stage1_limit": 16, "stage2_limit": 16, "max_steps": 1}
    params |= {"batch_size": 4, "checkpoint_every": 1}
    response = alice.post("/jobs", json={"kind": "train_vlm", "params": params})
    assert response.status_code == 201, response.text
    final = follow(alice, response.json()["id"], timeout=900)[-1][1]
    assert final["status"] == "succeeded", final
    assert final["result"]["stage1"]["steps"] == 1 and final["result"]["stage2"]["steps"] == 1
    # Each stage left the checkpoint a job whose worker died would resume from.
    for stage in (1, 2):
        progress = e2e_dir / "jobs" / final["id"] / f"stage{stage}" / "checkpoint" / "progress.json"
        assert json.loads(progress.read_text())["step"] == 1
    job = alice.get(f"/jobs/{final['id']}").json()
    assert [p["step"] for p in job["metrics"]["stage2_validation_loss"]] == [1]
    assert job["artifacts"] == ["vlm.zip", "stage1-loss.png", "stage2-loss.png", "summary.json"]
    response = alice.post("/jobs", json={"kind": "train_vlm", "params": {"grid": 9}})
    assert_error(response, 422, "params.grid")
