"""Committed data for tests that drive a live server: users made for real, and the reset
that empties the database afterwards (what ``clean_database`` does, for sync tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_server.apps.users import core
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.conftest import reset_database
from fastapi_server.tests.helpers.users import make_user

# Argon2 at its cheapest, for a live server whose generated requests hash passwords.
CHEAP_HASHING = {
    "USERS_ARGON2_TIME_COST": "1",
    "USERS_ARGON2_MEMORY_KIB": "1024",
    "USERS_ARGON2_PARALLELISM": "1",
}


async def bearer_headers(url: str, email: str, create: bool = False, **user: Any) -> dict[str, str]:
    """``Authorization`` for the user ``email`` (committed first when ``create``); a fresh
    token each call, so one issued after a logout works."""
    database = Database.for_tool(url, application_name="test:committed")
    try:
        async with database.transaction() as session:
            dbs = Databases(session)
            found = (
                await make_user(dbs, email=email, **user)
                if create
                else await dbs.users.get_by_email(email)
            )
            assert found is not None
            return {"Authorization": f"Bearer {core.access_token(found).token}"}
    finally:
        await database.dispose()


async def reset(url: str) -> None:
    """Empty every table and put the seeds back."""
    engine = create_async_engine(to_sqlalchemy_url(url))
    try:
        await reset_database(engine, url)
    finally:
        await engine.dispose()
