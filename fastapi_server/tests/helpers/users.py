"""Users for tests of any app: ``make_user``, ``auth_headers``, ``STRONG_PASSWORD``."""

from __future__ import annotations

import uuid
from functools import lru_cache

from fastapi_server.apps.users import core, passwords
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.resources.database.databases import Databases

STRONG_PASSWORD = "Correct-Horse-42-Battery"  # passes the password policy


def _hashed(password: str) -> str:
    settings = get_users_settings()
    params = (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    return _hashed_with(password, params)


@lru_cache
def _hashed_with(password: str, params: tuple[int, int, int]) -> str:
    return passwords.hash_password_sync(password)  # once per password: tests stay fast


async def make_user(
    dbs: Databases,
    *,
    email: str | None = None,
    password: str = STRONG_PASSWORD,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    superuser: bool = False,
    verified: bool = True,
    active: bool = True,
) -> User:
    """A user in the test's transaction (flushed, not committed); random email when None."""
    return await dbs.users.create(
        email=email or f"user-{uuid.uuid4().hex[:12]}@example.org",
        first_name=first_name,
        last_name=last_name,
        hashed_password=_hashed(password),
        is_superuser=superuser,
        is_verified=verified,
        is_active=active,
        verified_on=await dbs.users.now() if verified else None,
    )


def auth_headers(user: User) -> dict[str, str]:
    """``Authorization: Bearer <access token>`` for ``user``."""
    return {"Authorization": f"Bearer {core.access_token(user).token}"}
