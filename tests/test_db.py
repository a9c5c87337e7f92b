"""The schema, its migrations, API-key users and conversations on a real SQLite file and,
through the `database_url` fixture, on a real PostgreSQL cluster too."""

import sqlite3
import subprocess
import sys
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from omnicoach import conversations
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, Base, User
from omnicoach.errors import InvalidRequestError, NotFoundError
from omnicoach.users import auth_enabled, create_key, hash_key, register_keys, revoke, user_for_key


@pytest.fixture
def db(database_url):
    """A migrated database on each engine (SQLite, PostgreSQL)."""
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def sqlite_db(tmp_path):
    """For what only SQLite has: its pragmas and the bytes of its file."""
    database = Database(f"sqlite:///{tmp_path / 'omnicoach.db'}")
    database.migrate()
    yield database
    database.close()


def test_migrations_build_exactly_the_declared_schema(db):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_db, tmp_path):
    with sqlite_db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    mode = sqlite3.connect(tmp_path / "omnicoach.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_migrating_twice_is_harmless(db):
    db.migrate()
    assert not auth_enabled(db)


def test_keys_are_stored_hashed_and_turn_auth_on(sqlite_db, tmp_path):
    db = sqlite_db
    key = create_key(db, "ana")
    assert auth_enabled(db) and user_for_key(db, key) is not None
    assert user_for_key(db, key + "x") is None
    # Every byte SQLite wrote: the database file and its write-ahead log.
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("omnicoach.db*"))
    assert key.encode() not in raw and hash_key(key).encode() in raw
    with pytest.raises(InvalidRequestError, match="already exists"):
        create_key(db, "ana")
    with pytest.raises(InvalidRequestError):
        create_key(db, LOCAL_USER_ID)


def test_configured_keys_register_once_and_revoking_deletes_the_users_data(db):
    register_keys(db, ["k1"])
    register_keys(db, ["k1"])
    user = user_for_key(db, "k1")
    conversation = conversations.create(db, user, "mine")
    conversations.append(db, user, conversation.id, "user", "hello")

    with db.read() as session:
        name = session.get(User, user).name
    revoke(db, name)
    assert user_for_key(db, "k1") is None
    with pytest.raises(NotFoundError):
        conversations.messages(db, user, conversation.id)
    with pytest.raises(InvalidRequestError, match="no user"):
        revoke(db, name)


def test_message_ids_are_never_reused_after_a_delete(db):
    conversation = conversations.create(db, LOCAL_USER_ID)
    conversations.append(db, LOCAL_USER_ID, conversation.id, "user", "q")
    answer = conversations.append(db, LOCAL_USER_ID, conversation.id, "assistant", "a")
    conversations.truncate(db, LOCAL_USER_ID, conversation.id, answer.id)
    again = conversations.append(db, LOCAL_USER_ID, conversation.id, "assistant", "b")
    assert again.id > answer.id


def test_concurrent_appends_lose_nothing(db):
    """Threads appending to a few conversations at once (as the server's request threads do):
    every message is kept once, each thread's in its order, and each conversation is named
    after its first question, the one with the smallest id."""
    threads_count, per_thread = 8, 15
    chats = [conversations.create(db, LOCAL_USER_ID) for _ in range(2)]
    errors = []

    def talk(n: int) -> None:
        try:
            for i in range(per_thread):
                chat = chats[(n + i) % len(chats)]
                conversations.append(db, LOCAL_USER_ID, chat.id, "user", f"thread {n} says {i}")
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    kept = []
    for chat in chats:
        messages = conversations.messages(db, LOCAL_USER_ID, chat.id)
        assert conversations.get(db, LOCAL_USER_ID, chat.id).title == messages[0].content
        kept += messages
    contents = [m.content for m in kept]
    assert sorted(contents) == sorted(
        f"thread {n} says {i}" for n in range(threads_count) for i in range(per_thread)
    )
    for n in range(threads_count):
        said = sorted((m.id, m.content) for m in kept if m.content.startswith(f"thread {n} "))
        assert [content for _, content in said] == [
            f"thread {n} says {i}" for i in range(per_thread)
        ]


def test_processes_starting_together_migrate_once(database_url):
    """A server and its workers started at once on an empty database each migrate it."""
    migrate = f"from omnicoach.db import Database; Database({database_url!r}).migrate()"
    starting = [subprocess.Popen([sys.executable, "-c", migrate]) for _ in range(3)]
    assert [process.wait(120) for process in starting] == [0, 0, 0]
    database = Database(database_url)
    with database.read() as session:
        assert [user.id for user in session.query(User)] == [LOCAL_USER_ID]
    database.close()
