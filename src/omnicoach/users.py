"""Users are API keys. Keys are shown once, at creation, and stored only as sha256 hashes.

Auth is on as soon as one key exists: in the database (`omnicoach keys create NAME`) or in
``OMNICOACH_API_KEYS``. With none, everything belongs to the local user.

Checking a key leaks nothing usable through timing: the database is searched for the key's
sha256, never for the key itself, so the (indexed, not constant-time) search can at most hint
at the leading bytes of a stored hash, and even a whole stored hash gives no key back (keys
are 256 random bits; a hash cannot be inverted). The row found is then compared once more,
digest to digest, with hmac.compare_digest, so the answer itself never rests on an
early-exit comparison.
"""

import hashlib
import hmac
import secrets

from sqlalchemy import delete, select

from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, User, new_id
from omnicoach.errors import InvalidRequestError

KEY_PREFIX = "oc-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, name: str) -> str:
    """Make a user NAME with a new random key; returns the key (the only time it is seen)."""
    name = name.strip()
    if not name or name == LOCAL_USER_ID:
        raise InvalidRequestError(f"invalid user name {name!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise InvalidRequestError(f"a user named {name!r} already exists")
        session.add(User(id=new_id("user_"), name=name, key_hash=hash_key(key)))
    return key


def register_keys(db: Database, keys: list[str]) -> None:
    """Make a user for each configured key that has none yet (named after its hash)."""
    with db.write() as session:
        for key in keys:
            digest = hash_key(key)
            if session.scalar(select(User).where(User.key_hash == digest)) is None:
                session.add(User(id=new_id("user_"), name=f"key-{digest[:12]}", key_hash=digest))


def list_users(db: Database) -> list[User]:
    with db.read() as session:
        return list(session.scalars(select(User).where(User.key_hash.is_not(None))))


def revoke(db: Database, name: str) -> None:
    """Delete the user NAME with everything it owns (conversations, files, jobs)."""
    with db.write() as session:
        result = session.execute(delete(User).where(User.name == name, User.key_hash.is_not(None)))
        if result.rowcount == 0:
            raise InvalidRequestError(f"no user named {name!r}")


def auth_enabled(db: Database) -> bool:
    with db.read() as session:
        return (
            session.scalar(select(User.id).where(User.key_hash.is_not(None)).limit(1)) is not None
        )


def user_for_key(db: Database, key: str) -> str | None:
    """The id of the user whose key is KEY, or None."""
    digest = hash_key(key)
    with db.read() as session:
        found = session.execute(
            select(User.id, User.key_hash).where(User.key_hash == digest)
        ).first()
    if found is None or not hmac.compare_digest(found.key_hash.encode(), digest.encode()):
        return None
    return found.id
