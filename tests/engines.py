"""Real Redis and PostgreSQL servers for the tests, each on a free 127.0.0.1 port with its
files in a temporary directory, stopped (and the directory removed) when the block ends.

Both come from Debian packages (system-packages.txt), which `make test` installs; a missing
one fails the tests that need it with the package to install, never skips them.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.server_process import free_port

START_TIMEOUT_S = 60


def find_program(name: str, package: str, *directories: str) -> str:
    """NAME from the first of DIRECTORIES (glob patterns) that has it, else from PATH."""
    for pattern in directories:
        for directory in sorted(glob.glob(pattern), reverse=True):  # the newest version first
            if os.access(Path(directory) / name, os.X_OK):
                return str(Path(directory) / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found: install the Debian package {package} "
            f"(it is in system-packages.txt: `make test` installs it, or apt-get install {package})"
        )
    return found


def _wait_until(ready, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {START_TIMEOUT_S} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """`redis-server` keeping nothing on disk; `url` is its database 0."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = self.directory / "redis.log"

    def __enter__(self) -> "RedisServer":
        import redis

        program = find_program("redis-server", "redis-server")
        command = [program, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)

        def ready() -> bool:
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        try:
            _wait_until(ready, self.process, "redis-server", self.log)
        except BaseException:
            _stop(self.process)
            raise
        finally:
            client.close()
        return self

    def __exit__(self, *_exc) -> None:
        _stop(self.process)


class PostgresCluster:
    """A throwaway PostgreSQL cluster (trust authentication, durability off: it is discarded).

    PostgreSQL refuses to run as root, so under root (CI containers) the cluster belongs to
    the `postgres` user that Debian's package creates (else `nobody`), and lives under /tmp
    rather than pytest's temp dir, which only root may enter.
    """

    SUPERUSER = "postgres"

    def __init__(self):
        self.port = free_port()
        self.owner = None
        if os.geteuid() == 0:
            name = "postgres" if _user_exists("postgres") else "nobody"
            self.owner = pwd.getpwnam(name)
        self.directory = Path(tempfile.mkdtemp(prefix="omnicoach-postgres-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"

    def _run_as_owner(self) -> dict:
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def __enter__(self) -> "PostgresCluster":
        import psycopg

        debian = "/usr/lib/postgresql/*/bin"
        initdb = find_program("initdb", "postgresql", debian)
        postgres = find_program("postgres", "postgresql", debian)
        if self.owner is not None:
            os.chown(self.directory, self.owner.pw_uid, self.owner.pw_gid)
        as_owner = self._run_as_owner()
        initialised = subprocess.run(
            [initdb, "-D", str(self.data), "-U", self.SUPERUSER, "--auth=trust", "-E", "UTF8"]
            + ["--no-locale", "--no-sync"],
            cwd=self.directory,
            capture_output=True,
            text=True,
            **as_owner,
        )
        if initialised.returncode != 0:
            self.__exit__()
            raise RuntimeError(f"initdb failed:\n{initialised.stdout}{initialised.stderr}")
        settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        command = [postgres, "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port)]
        command += ["-k", str(self.directory)]  # its Unix socket, not in /var/run/postgresql
        for setting in settings:
            command += ["-c", setting]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT, **as_owner
            )

        def ready() -> bool:
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                return False

        try:
            _wait_until(ready, self.process, "postgres", self.log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        if hasattr(self, "process"):
            _stop(self.process, signal.SIGINT)  # "fast" shutdown: ends open sessions
        shutil.rmtree(self.directory, ignore_errors=True)

    def _dsn(self, database: str) -> str:
        return f"postgresql://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(sql)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database, its SQLAlchemy URL; dropped when the block ends."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql+psycopg://{self.SUPERUSER}@127.0.0.1:{self.port}/{name}"
        finally:
            self._admin(f"DROP DATABASE {name} WITH (FORCE)")  # FORCE: ends open sessions


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
