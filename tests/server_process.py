"""A real omnicoach server in its own process on a free 127.0.0.1 port."""

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, log_path, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICOACH_")}
        env["OMNICOACH_DATA_DIR"] = str(REPO / "var")
        env.update({f"OMNICOACH_{k.upper()}": str(v) for k, v in settings.items()})
        self.log = open(log_path, "w")  # noqa: SIM115 (kept open for the process's life)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnicoach.cli", "serve", "--port", str(self.port)],
            env=env,
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
