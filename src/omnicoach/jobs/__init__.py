"""Background jobs: long work (evaluations, later training) run by `omnicoach worker`.

The server validates a job and stores it (store.py), then queues its id (queue.py); a worker
takes the id and runs the job's kind (runner.py, kinds.py), which reports progress, logs,
metrics and artifacts through a JobContext (context.py). State lives in the database, so it
survives restarts and is what the API shows.
"""
