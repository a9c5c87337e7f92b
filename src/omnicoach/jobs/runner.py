"""Running one job in the worker: the body of the queue's task.

Every outcome ends in the database: success with its result, cancellation, or failure with
a one-line error on the job and the traceback in its log. Nothing a job does is raised to
huey, which would only log it. While a job runs, a thread refreshes its heartbeat, so other
workers can tell a live worker from a dead one (recovery.py).
"""

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.jobs import recovery, store
from omnicoach.jobs.context import JobCancelled, JobContext
from omnicoach.jobs.kinds import KINDS, JobKind
from omnicoach.models import ModelRegistry
from omnicoach.process_owner import this_process

logger = logging.getLogger("omnicoach.jobs")


class JobRunner:
    def __init__(self, settings: Settings, db: Database, kinds: dict[str, JobKind] = KINDS):
        self.settings, self.db, self.kinds = settings, db, kinds
        self.worker = this_process()  # recorded on every job this process starts

    @cached_property
    def registry(self) -> ModelRegistry:
        """Created by the first job that needs a model; its loaded models serve later jobs.

        Jobs use the fp32 transformers model itself (perplexity, training), never the chat
        engine, so the worker does not build the fast one (its packed weights and KV cache).
        """
        return ModelRegistry(self.settings.model_copy(update={"engine": "transformers"}))

    @cached_property
    def serving_registry(self) -> ModelRegistry:
        """The models as the server runs them (the fast chat engine), for jobs that answer
        as the server does (the "chat" kind): the same engine gives the same answers."""
        return ModelRegistry(self.settings)

    def __call__(self, job_id: str) -> None:
        job = store.start(self.db, job_id, self.worker)
        if job is None:
            logger.info("%s: not queued any more (cancelled?), skipped", job_id)
            return
        ctx = JobContext(
            job, self.settings, self.db, lambda: self.registry, lambda: self.serving_registry
        )
        try:
            kind = self.kinds.get(job.kind)
            if kind is None:
                raise LookupError(f"this worker does not know the job kind {job.kind!r}")
            with self._heartbeat(job_id):
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
        store.finish(self.db, job_id, **outcome, worker=self.worker)

    @contextmanager
    def _heartbeat(self, job_id: str) -> Iterator[None]:
        """Refresh the job's heartbeat every recovery.HEARTBEAT_S while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(recovery.HEARTBEAT_S):
                try:
                    if not store.beat(self.db, job_id, self.worker):
                        return  # finished, or taken back by another worker
                except Exception as exc:  # the database is busy or away: try again later
                    logger.warning("%s: heartbeat not written: %s", job_id, exc)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def interrupted(self, job_id: str) -> None:
        """The worker stopped while the job ran (huey reports it as the consumer exits)."""
        store.fail(self.db, job_id, "interrupted: the worker stopped before the job finished")
