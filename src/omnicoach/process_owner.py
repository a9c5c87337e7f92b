"""Which process owns a row, and whether that process is gone.

A worker owns the job it runs (jobs.worker); a server owns the answer it streams
(messages.writer). Each records itself as "host:pid:start time" and refreshes a heartbeat
while it works. A process killed without a word (SIGKILL, the OOM killer, a power cut) cannot
say it stopped, so whoever starts next (or sweeps) asks whether the owner is gone:

- an owner on this host is gone when its process is: no such pid, a zombie, or a pid now used
  by a later process (the start time differs);
- an owner on another host cannot be asked: it is gone when its heartbeat is older than the
  caller's timeout;
- a row that names no owner (written before owners were recorded) has none alive.

"This host" is the hostname and the pid namespace: two containers that share a hostname (host
networking) cannot see each other's pids, so each is another host to the other.
"""

import os
import platform
from collections.abc import Callable

import psutil


def this_host() -> str:
    """The hostname, with the pid namespace where Linux shows it ("name/4026531836")."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return platform.node()
    return f"{platform.node()}/{namespace.strip('pid:[]')}"


def this_process() -> str:
    """This process as an owner is recorded: "host:pid:start time"."""
    process = psutil.Process()
    return f"{this_host()}:{process.pid}:{process.create_time():.2f}"


def process_alive(pid: int, started: str) -> bool:
    """Whether the process PID that started at STARTED (as this_process writes it) still runs."""
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE and f"{process.create_time():.2f}" == started
        )
    except psutil.NoSuchProcess:  # a zombie too
        return False
    except psutil.AccessDenied:  # exists, someone else's: assume it is the owner
        return True


def is_gone(
    owner: str | None,
    heartbeat_at: float | None,
    now: float,
    timeout: float,
    host: str | None = None,
    alive: Callable[[int, str], bool] = process_alive,
) -> bool:
    """The rule above, for OWNER seen at NOW from a process on HOST (default: this one)."""
    if not owner:
        return True
    owner_host, pid, started = _parse(owner)
    if owner_host == (host or this_host()) and pid is not None:
        return not alive(pid, started)
    return heartbeat_at is None or now - heartbeat_at > timeout


def _parse(owner: str) -> tuple[str, int | None, str]:
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    return host, int(pid) if pid.isdigit() else None, started
