"""`omnicoach worker`: the huey consumer that runs jobs.

One worker thread per process: a job uses the CPU cores torch is given, so two at once in one
process would only slow each other down. More throughput means more worker processes (on more
machines, with a Redis queue).

Stopping follows huey: SIGTERM stops at once and the running job is marked failed
("interrupted"); SIGINT (Ctrl-C) lets the running job finish first, and a second one stops at
once. A worker that dies without a word (SIGKILL, out of memory) leaves its job running: the
next worker to start (or, after a heartbeat timeout, any running one) takes it back and runs
it again from its checkpoint (recovery.py).
"""

import logging
import os
import threading

from huey.signals import SIGNAL_INTERRUPTED

from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.jobs import recovery
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

    recovery.take_back_orphans(db, queue.enqueue)  # jobs a dead worker left running
    sweeping = threading.Event()
    threading.Thread(
        target=_sweep, args=(db, queue, sweeping), name="orphan-sweep", daemon=True
    ).start()
    consumer = queue.huey.create_consumer(
        workers=1, worker_type="thread", periodic=False, max_delay=MAX_POLL_DELAY_S
    )
    consumer.run()
    sweeping.set()
    if any(thread.is_alive() for _, thread in consumer.worker_threads):
        # Stopped in the middle of a job (SIGTERM), whose state huey's interrupted signal has
        # written; but finalising the interpreter under a thread still inside torch aborts
        # the process, so leave without finalising.
        logging.shutdown()
        os._exit(0)
    db.close()


def _sweep(db: Database, queue: JobQueue, stop: threading.Event) -> None:
    """Take back orphans every recovery.SWEEP_S: those of a worker on another host show up
    only once its heartbeat is old, which is after this worker started."""
    while not stop.wait(recovery.SWEEP_S):
        try:
            recovery.take_back_orphans(db, queue.enqueue)
        except Exception as exc:  # the database is busy or away: try again next time
            logging.getLogger("omnicoach.jobs").warning("looking for orphaned jobs: %s", exc)
