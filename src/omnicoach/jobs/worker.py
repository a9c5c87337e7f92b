"""`omnicoach worker`: the huey consumer that runs jobs.

One worker thread per process: a job uses the CPU cores torch is given, so two at once in one
process would only slow each other down. More throughput means more worker processes (on more
machines, with a Redis queue).

Stopping follows huey: SIGTERM stops at once and the running job is marked failed
("interrupted"); SIGINT (Ctrl-C) lets the running job finish first, and a second one stops at
once.
"""

import logging
import os

from huey.signals import SIGNAL_INTERRUPTED

from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.jobs.queue import JobQueue
from omnicoach.jobs.runner import JobRunner
from omnicoach.threads import apply_threads

# An idle consumer polls the queue with exponential backoff up to this many seconds; the
# default (10 s) makes a job wait that long to start after a quiet spell.
MAX_POLL_DELAY_S = 1.0


def run_worker(settings: Settings) -> None:
    """Consume jobs until a signal stops the process."""
    apply_threads(settings.threads)
    db = Database(settings.database)
    db.migrate()
    runner = JobRunner(settings, db)
    queue = JobQueue(settings, runner)

    @queue.huey.signal(SIGNAL_INTERRUPTED)
    def _interrupted(signal, task) -> None:
        runner.interrupted(*task.args)

    consumer = queue.huey.create_consumer(
        workers=1, worker_type="thread", periodic=False, max_delay=MAX_POLL_DELAY_S
    )
    consumer.run()
    if any(thread.is_alive() for _, thread in consumer.worker_threads):
        # Stopped in the middle of a job (SIGTERM), whose state huey's interrupted signal has
        # written; but finalising the interpreter under a thread still inside torch aborts
        # the process, so leave without finalising.
        logging.shutdown()
        os._exit(0)
    db.close()
