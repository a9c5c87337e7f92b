"""The schema, its migrations, and API-key users on a real SQLite file."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from omnicoach import conversations
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, Base, User
from omnicoach.errors import InvalidRequestError, NotFoundError
from omnicoach.users import auth_enabled, create_key, hash_key, register_keys, revoke, user_for_key


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'omnicoach.db'}")
    database.migrate()
    yield database
    database.close()


def test_migrations_build_exactly_the_declared_schema(db):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db, tmp_path):
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    mode = sqlite3.connect(tmp_path / "omnicoach.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_migrating_twice_is_harmless(db):
    db.migrate()
    assert not auth_enabled(db)


def test_keys_are_stored_hashed_and_turn_auth_on(db, tmp_path):
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
