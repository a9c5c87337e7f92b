"""A real omnicoach server in its own process on a free 127.0.0.1 port."""

import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from tests.conftest import REPO, subprocess_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, log_path, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")  # noqa: SIM115 (kept open for the process's life)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "serve", "--port", str(self.port)],
            env=subprocess_env(**settings),
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; see {self.log.name}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {timeout} s; see {self.log.name}")

    def __enter__(self) -> "ServerProcess":
        """Wait until it serves; stopped when the block ends, also when waiting failed."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.log.closed:  # stopped already
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@contextmanager
def worker_process(log_path, **settings):
    """A real `omnicoach worker` with SETTINGS (start it once the server has migrated the
    database); stopped with SIGTERM when the block ends."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "worker"],
            env=subprocess_env(**settings),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            process.wait(15)
