"""What job code sees: the caller when a job is created, and a context while it runs."""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from sqlalchemy import delete

from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.db.schema import Job, JobLog, JobMetric
from omnicoach.errors import OmnicoachError, UnknownModelError
from omnicoach.models import ModelRegistry

logger = logging.getLogger("omnicoach.jobs")

# A job may report every step, hundreds of times a second; the database sees at most this
# many writes per second per job (the final state is always written).
FLUSH_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised inside a job function once its cancellation was requested; the job stops there."""


@dataclass(frozen=True)
class Submission:
    """Who creates a job, with what it takes to check their params (files, models)."""

    user_id: str
    settings: Settings
    db: Database
    registry: ModelRegistry

    def chat_model(self, name: str | None) -> str:
        """The chat model a job will use: NAME, or the server's default, fixed now so the job
        records it; an unknown one is an error on params.model."""
        model = name or self.settings.chat_model
        try:
            self.registry.spec(model, role="chat")
        except UnknownModelError as exc:
            raise InvalidParam("model", exc) from exc
        return model


class InvalidParam(Exception):
    """A param that passed its schema but not a check against the world (a file that is not
    the caller's, an unknown model): ERROR says what, PARAM names the field."""

    def __init__(self, param: str, error: OmnicoachError):
        super().__init__(str(error))
        self.param, self.error = param, error


class JobContext:
    """Given to a job function: settings, models, and the ways to report back.

    progress(), metric() and check_cancelled() buffer their reports and write them at most
    every FLUSH_INTERVAL_S; log() writes at once (lines are few, and someone may be waiting
    for one). Each write also reads ``cancel_requested`` and raises JobCancelled when it is
    set, so a job stops at its next report after a cancel.
    """

    def __init__(
        self,
        job: Job,
        settings: Settings,
        db: Database,
        registry: Callable[[], ModelRegistry],
        serving_registry: Callable[[], ModelRegistry] | None = None,
    ):
        self.job_id, self.user_id = job.id, job.user_id
        self.settings, self.db = settings, db
        self._registry = registry
        self._serving_registry = serving_registry or registry
        self.artifact_dir: Path = settings.jobs_dir / job.id
        self.artifacts: list[str] = []
        self._progress: float | None = None
        self._pending: list[JobLog | JobMetric] = []
        self._last_flush = 0.0

    @property
    def registry(self) -> ModelRegistry:
        """The worker's models, created on first use and shared by its jobs."""
        return self._registry()

    @property
    def serving_registry(self) -> ModelRegistry:
        """The worker's models as the server runs them (the fast chat engine), created on
        first use: for jobs that must answer exactly as the server does."""
        return self._serving_registry()

    def progress(self, fraction: float) -> None:
        self._progress = min(max(fraction, 0.0), 1.0)
        self._report()

    def log(self, line: str) -> None:
        logger.info("%s: %s", self.job_id, line)
        self._pending.append(JobLog(job_id=self.job_id, line=line, created_at=time.time()))
        self._report(now=True)

    def metric(self, name: str, step: int, value: float) -> None:
        point = JobMetric(
            job_id=self.job_id, name=name, step=step, value=value, created_at=time.time()
        )
        self._pending.append(point)
        self._report()

    def check_cancelled(self) -> None:
        """For long stretches without reports."""
        self._report()

    def add_artifact(self, name: str) -> Path:
        """The path to write the artifact NAME to; it is listed with the job and downloadable."""
        if not name or PurePath(name).name != name or name in (".", ".."):
            raise ValueError(f"an artifact name must be a plain file name, got {name!r}")
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        if name not in self.artifacts:
            self.artifacts.append(name)
        return self.artifact_dir / name

    def resume_from(self, checkpoint: Path) -> None:
        """Call before training that resumes from CHECKPOINT (a directory with progress.json,
        training/checkpoints.py) when it exists: the metric points after its step, written by a
        run that died later, are dropped, since the resumed run writes those steps again."""
        progress = checkpoint / "progress.json"
        if not progress.is_file():
            return
        step = json.loads(progress.read_text())["step"]
        with self.db.write() as session:
            session.execute(
                delete(JobMetric).where(JobMetric.job_id == self.job_id, JobMetric.step > step)
            )

    def _report(self, now: bool = False) -> None:
        due = now or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        if due and self.flush():
            raise JobCancelled

    def flush(self) -> bool:
        """Write what is buffered now; returns whether cancellation was requested."""
        with self.db.write() as session:
            job = session.get_one(Job, self.job_id)
            if self._progress is not None:
                job.progress = self._progress
            job.artifacts = list(self.artifacts)
            session.add_all(self._pending)
            cancel_requested = job.cancel_requested
        self._pending = []
        self._last_flush = time.monotonic()
        return cancel_requested
