"""Fixtures of the feature flags tests: superusers, rolled back or committed."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.users import auth_headers, make_user


@pytest.fixture
async def admin(dbs: Databases) -> User:
    """A superuser in the rolled-back test transaction."""
    return await make_user(dbs, email="flag-admin@example.org", superuser=True)


@pytest.fixture
def admin_headers(admin: User) -> dict[str, str]:
    return auth_headers(admin)


@pytest.fixture
async def committed_admin(engine: AsyncEngine, clean_database: str) -> User:
    """A superuser committed for real (other processes see it); removed by clean_database."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        user = await make_user(Databases(session), email="ops-admin@example.org", superuser=True)
    return user
