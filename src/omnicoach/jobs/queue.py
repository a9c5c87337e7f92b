"""The queue between the server and the workers: huey, carrying only job ids.

Everything else about a job lives in the database, so the queue can be lost or swapped
(SQLite file ⇄ Redis) without losing a job's state. The server opens the queue to enqueue,
the worker to consume; both register the one task, under the same name.
"""

from collections.abc import Callable

from huey import Huey, RedisHuey, SqliteHuey
from huey.exceptions import ConfigurationError

from omnicoach.config import Settings
from omnicoach.errors import ConfigError

QUEUE_NAME = "omnicoach"
TASK_NAME = "run_job"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_huey(settings: Settings) -> Huey:
    """SQLite under data_dir by default; Redis when job_queue_url is a Redis URL."""
    url = settings.job_queue_url
    if not url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Results live in the jobs table, so huey keeps none.
        return SqliteHuey(
            QUEUE_NAME, filename=str(settings.data_dir / "jobs-queue.db"), results=False
        )
    if url.startswith(REDIS_SCHEMES):
        try:
            return RedisHuey(QUEUE_NAME, url=url, results=False)
        except ConfigurationError as exc:
            raise ConfigError(
                f"job_queue_url is a Redis URL but Redis is unavailable ({exc}); install it "
                "with: pip install 'omnicoach[redis]'"
            ) from exc
    raise ConfigError(
        f"job_queue_url must be empty (SQLite under data_dir) or a Redis URL "
        f"(redis://host:port/db), got {url!r}"
    )


def _not_here(job_id: str) -> None:
    raise RuntimeError(f"job {job_id} reached a queue opened to enqueue only")


class JobQueue:
    def __init__(self, settings: Settings, run: Callable[[str], None] = _not_here):
        """RUN executes a job by id; only the worker, which consumes, passes one."""
        self.huey = open_huey(settings)

        # huey names a task after its function's module and its name, so the function is
        # defined here whatever RUN is: server and worker then both know the task as
        # "omnicoach.jobs.queue.run_job".
        def run_job(job_id: str) -> None:
            run(job_id)

        self._task = self.huey.task(name=TASK_NAME)(run_job)

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)
