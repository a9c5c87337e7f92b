"""Running one job in the worker: the body of the queue's task.

Every outcome ends in the database: success with its result, cancellation, or failure with
a one-line error on the job and the traceback in its log. Nothing a job does is raised to
huey, which would only log it.
"""

import logging
import traceback
from functools import cached_property

from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.jobs import store
from omnicoach.jobs.context import JobCancelled, JobContext
from omnicoach.jobs.kinds import KINDS, JobKind
from omnicoach.models import ModelRegistry

logger = logging.getLogger("omnicoach.jobs")


class JobRunner:
    def __init__(self, settings: Settings, db: Database, kinds: dict[str, JobKind] = KINDS):
        self.settings, self.db, self.kinds = settings, db, kinds

    @cached_property
    def registry(self) -> ModelRegistry:
        """Created by the first job that needs a model; its loaded models serve later jobs.

        Jobs use the fp32 transformers model itself (perplexity, training), never the chat
        engine, so the worker does not build the fast one (its packed weights and KV cache).
        """
        return ModelRegistry(self.settings.model_copy(update={"engine": "transformers"}))

    def __call__(self, job_id: str) -> None:
        job = store.start(self.db, job_id)
        if job is None:
            logger.info("%s: not queued any more (cancelled?), skipped", job_id)
            return
        ctx = JobContext(job, self.settings, self.db, lambda: self.registry)
        try:
            kind = self.kinds.get(job.kind)
            if kind is None:
                raise LookupError(f"this worker does not know the job kind {job.kind!r}")
            result = kind.run(ctx, kind.params.model_validate(job.params))
        except JobCancelled:
            outcome = {"status": "cancelled", "log": "cancelled"}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s failed: %s", job_id, error)
            outcome = {"status": "failed", "error": error, "log": traceback.format_exc()}
        else:
            outcome = {"status": "succeeded", "result": result}
        ctx.flush()  # what the job reported since its last write
        store.finish(self.db, job_id, **outcome)

    def interrupted(self, job_id: str) -> None:
        """The worker stopped while the job ran (huey reports it as the consumer exits)."""
        store.fail(self.db, job_id, "interrupted: the worker stopped before the job finished")
