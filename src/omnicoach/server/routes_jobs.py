"""Background jobs over HTTP: create, list, read, follow as Server-Sent Events, cancel, and
download artifacts. Jobs run in `omnicoach worker`; these routes only use the database and
put job ids on the queue (``app.state.job_queue``)."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from omnicoach.db.schema import Job, JobLog, JobMetric
from omnicoach.jobs import store
from omnicoach.jobs.context import InvalidParam, Submission
from omnicoach.jobs.kinds import KINDS
from omnicoach.server.auth import CurrentUser
from omnicoach.server.errors import APIError, from_domain_error

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENTS_POLL_S = 0.5  # how often an event stream looks at the database
RECENT_LOGS = 100  # log lines in GET /jobs/{id}; the event stream sends them all


class JobCreate(BaseModel):
    kind: str = Field(description=f"One of: {', '.join(KINDS)}.")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")


def owned_job(job_id: str, request: Request, user: CurrentUser) -> Job:
    """The caller's job JOB_ID; another user's is as missing as one that never existed."""
    return store.get(request.app.state.db, user, job_id)


OwnedJob = Annotated[Job, Depends(owned_job)]


def job_object(job: Job) -> dict:
    return {
        "id": job.id,
        "object": "job",
        "kind": job.kind,
        "params": job.params,
        "status": job.status,
        "progress": job.progress,
        "cancel_requested": job.cancel_requested,
        "result": job.result,
        "error": job.error,
        "artifacts": job.artifacts,
        "created_at": int(job.created_at),
        "started_at": _seconds(job.started_at),
        "finished_at": _seconds(job.finished_at),
        # Which worker runs it ("host:pid:start time"; None while queued), how many times a
        # worker has started it (a job whose worker died is run again, at most 3 times) and when
        # that worker last said it is alive.
        "worker": job.worker,
        "attempts": job.attempts or 0,
        "heartbeat_at": _seconds(job.heartbeat_at),
    }


def _seconds(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp)


def log_object(log: JobLog) -> dict:
    return {"created_at": log.created_at, "line": log.line}


def metric_object(point: JobMetric) -> dict:
    return {"name": point.name, "step": point.step, "value": point.value}


@router.post("", status_code=201)
def create_job(body: JobCreate, request: Request, user: CurrentUser) -> dict:
    """Validate the params, store the job, queue it; it starts when a worker is free."""
    return job_object(submit(request, user, body.kind, body.params))


def submit(request: Request, user: str, kind_name: str, given: dict[str, Any]) -> Job:
    """Check PARAMS for the kind KIND_NAME, store the job and queue it."""
    kind = KINDS.get(kind_name)
    if kind is None:
        raise APIError(
            400,
            f"unknown job kind {kind_name!r}; known kinds: {', '.join(KINDS)}",
            param="kind",
            code="unknown_job_kind",
        )
    state = request.app.state
    try:
        params = kind.prepare(
            kind.params.model_validate(given),
            Submission(user, state.settings, state.db, state.registry),
        )
    except ValidationError as exc:
        raise _params_error(exc) from None
    except InvalidParam as exc:
        raise from_domain_error(exc.error, param=f"params.{exc.param}") from exc
    # Stored (committed) before it is queued, so a worker always finds the row.
    job = store.create(state.db, user, kind.name, params.model_dump(mode="json"))
    try:
        state.job_queue.enqueue(job.id)
    except Exception as exc:  # e.g. Redis unreachable: the job must not sit queued forever
        store.fail(state.db, job.id, f"could not be queued: {exc}")
        raise APIError(
            503, f"the job queue is unavailable: {exc}", type="server_error", code="queue_error"
        ) from exc
    return job


def _params_error(exc: ValidationError) -> APIError:
    first = exc.errors()[0]
    param = ".".join(["params", *(str(p) for p in first["loc"])])
    return APIError(422, f"{param}: {first['msg']}", param=param, code=first["type"])


@router.get("")
def list_jobs(
    request: Request, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict:
    """The caller's jobs, newest first."""
    found = store.list_for(request.app.state.db, user, limit)
    return {"object": "list", "data": [job_object(job) for job in found]}


@router.get("/{job_id}")
def get_job(job: OwnedJob, request: Request) -> dict:
    """The job with its last log lines, its metric series by name, and its artifacts."""
    db = request.app.state.db
    series: dict[str, list[dict]] = {}
    for point in store.metrics(db, job.id):
        series.setdefault(point.name, []).append({"step": point.step, "value": point.value})
    logs = store.recent_logs(db, job.id, RECENT_LOGS)
    return {**job_object(job), "logs": [log_object(log) for log in logs], "metrics": series}


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job: OwnedJob, request: Request) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: `job` (state or progress changed), `log`, `metric`, and a last
    `done` with the finished job. The stream stops when the client disconnects."""
    db = request.app.state.db
    log_after = metric_after = 0
    last_state = None
    while True:
        changes = await run_in_threadpool(store.changes, db, job.id, log_after, metric_after)
        for log in changes.logs:
            yield ServerSentEvent(event="log", data=log_object(log))
            log_after = log.id
        for point in changes.metrics:
            yield ServerSentEvent(event="metric", data=metric_object(point))
            metric_after = point.id
        job = changes.job
        if job.status in store.TERMINAL:
            yield ServerSentEvent(event="done", data=job_object(job))
            return
        state = (job.status, job.progress, job.cancel_requested)
        if state != last_state:
            yield ServerSentEvent(event="job", data=job_object(job))
            last_state = state
        await anyio.sleep(EVENTS_POLL_S)


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, request: Request, user: CurrentUser) -> dict:
    """A queued job is cancelled at once, a running one within about a second; a finished
    job is returned as it is."""
    return job_object(store.request_cancel(request.app.state.db, user, job_id))


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=FileResponse,  # the artifact's own type (PNG, JSON, weights…)
    responses={200: {"content": {"*/*": {}}}},
)
def download_artifact(job: OwnedJob, name: str, request: Request) -> FileResponse:
    # Only names the job itself listed are served, so no path ever comes from the client.
    if name not in job.artifacts:
        raise APIError(
            404, f"job {job.id} has no artifact {name!r}", param="name", code="artifact_not_found"
        )
    return FileResponse(request.app.state.settings.jobs_dir / job.id / name, filename=name)
