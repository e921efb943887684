"""Fixtures of the users tests: cheap argon2, settings overrides, a verified user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.settings import SettingsEnv, app_settings_env
from fastapi_server.tests.helpers.users import make_user

# Argon2 at its cheapest: the tests hash hundreds of times. Production keeps the strong
# defaults (one test checks them). Exported, so scripts run as subprocesses inherit it.
FAST_HASHING = {
    "USERS_ARGON2_TIME_COST": "1",
    "USERS_ARGON2_MEMORY_KIB": "1024",
    "USERS_ARGON2_PARALLELISM": "1",
}


@pytest.fixture(scope="package", autouse=True)
def fast_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FAST_HASHING.items():
            patch.setenv(key, value)
        get_users_settings.cache_clear()
        yield
    get_users_settings.cache_clear()


UsersEnv = SettingsEnv


@pytest.fixture
def users_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[UsersEnv]:
    """``users_env(RETURN_VERIFICATION_TOKENS="1", ...)`` sets USERS_* for this test."""
    with app_settings_env(monkeypatch, "USERS_", get_users_settings) as configure:
        yield configure


@pytest.fixture
async def ada(dbs: Databases) -> User:
    """A verified, active user, committed to the test's savepoint (survives failed requests)."""
    user = await make_user(dbs, email="ada@example.org")
    await dbs.session.commit()  # a failing request rolls back only its own savepoint
    return user
