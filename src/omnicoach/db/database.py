"""The database: one engine per process, migrated to the newest schema before use.

SQLite (the default) runs in WAL mode so readers never wait for the writer, with a busy
timeout so concurrent writers (server threads, the job worker) queue instead of failing.
Sessions that write begin with ``BEGIN IMMEDIATE``: a transaction that read first and then
tries to write can otherwise fail at once with "database is locked" when another process
wrote in between, which no timeout cures.

Other databases (PostgreSQL) get the same one-writer-at-a-time semantics from a
transaction-level advisory lock taken first in every write session: the code reads a row, checks
its state and writes (a job's queued → running, a conversation's title from its first question),
which under PostgreSQL's READ COMMITTED would otherwise let two writers both pass the check.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from omnicoach.db.schema import LOCAL_USER_ID, User
from omnicoach.errors import NotFoundError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
# The advisory lock every PostgreSQL write transaction holds (any constant; only ours use it).
WRITE_LOCK_KEY = 0x6F6D6E69  # "omni"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._reading = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = self.engine
        if self.engine.dialect.name == "sqlite":
            self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._writing = sessionmaker(self._writer, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest migration and make sure the local user exists."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        # A server and workers started together must not all create the tables: one migrates
        # while the others wait (SQLite: BEGIN IMMEDIATE; PostgreSQL: the write lock), then
        # finds nothing left to do.
        with self._writer.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with self.write() as session:
            if session.get(User, LOCAL_USER_ID) is None:
                session.add(User(id=LOCAL_USER_ID, name=LOCAL_USER_ID, key_hash=None))

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reading() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session that commits when the block ends, or rolls everything back on error."""
        with self._writing() as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                # Released at commit or rollback; SQLite gets this from BEGIN IMMEDIATE.
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
            else:
                # BEGIN (IMMEDIATE) now: SQLAlchemy would send it only with the first
                # statement, so what a block does before one (FileStore.save moves the upload's
                # bytes into place) ran without the lock, and a delete of the same content's
                # last row could unlink the blob just moved: an acknowledged upload without its
                # bytes (found building benchmarks/soak.py, which uploads and deletes shared
                # content; 2 of 300 uploads lost their bytes in a threaded repro).
                session.connection()
            yield session

    def close(self) -> None:
        self.engine.dispose()


def owned(session: Session, table: type, row_id: str, user: str, kind: str):
    """The row ROW_ID of TABLE if USER owns it. Another user's row is reported exactly like
    a missing one (NotFoundError naming KIND), so ids never reveal what others have."""
    row = session.get(table, row_id)
    if row is None or row.user_id != user:
        raise NotFoundError(kind, row_id)
    return row
