"""Who is asking: the Bearer key's user, or the local user while auth is off.

Each key's requests are also counted here (server/rate_limit.py): over the limit, 429. The
local user is never limited: with auth off there is one user, the machine's owner, and the
generation queue (503 with Retry-After) already protects the machine from too much work.
"""

from typing import Annotated

from fastapi import Depends, Request

from omnicoach.db.schema import LOCAL_USER_ID
from omnicoach.server.errors import APIError
from omnicoach.users import auth_enabled, user_for_key


def current_user(request: Request) -> str:
    """FastAPI dependency returning the caller's user id; 401 for a missing or wrong key,
    429 when the key has made too many requests."""
    db = request.app.state.db
    if not auth_enabled(db):
        return LOCAL_USER_ID
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("no API key given: send the header 'Authorization: Bearer <key>'")
    user = user_for_key(db, key.strip())
    if user is None:
        raise _unauthorized(f"incorrect API key provided: {_masked(key.strip())}")
    request.app.state.rate_limiter.check(user)
    return user


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def _masked(key: str) -> str:
    return key[:3] + "…" + key[-4:] if len(key) > 10 else "…"


# A route parameter `user: CurrentUser` receives the caller's user id (FastAPI runs the check
# once per request, also when the router already lists it as a dependency).
CurrentUser = Annotated[str, Depends(current_user)]
