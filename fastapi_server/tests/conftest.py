"""Test fixtures: one real PostgreSQL per test session, migrated with Alembic.

Isolation: ``db_session``/``client`` run each test inside an outer transaction that is
rolled back (the app's commits become savepoints). Tests that need real commits (other
processes, LISTEN/NOTIFY, background workers) use ``committed_client`` or
``clean_database``, which truncate every table and re-seed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.types import Receive, Scope, Send

from fastapi_server.config import Settings, get_settings
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.main import create_app
from fastapi_server.models import Base
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database, RequestScope, WriteScope
from fastapi_server.tests.helpers.processes import free_port
from init.bootstrap import bootstrap, create_database_if_missing, seed
from init.local_postgres import LocalPostgres

TEST_DATABASE = "fastapi_server_test"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres | None]:
    """A throwaway local PostgreSQL, or None when TEST_DATABASE_URL names a server."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    base_dir = Path(tempfile.mkdtemp(prefix="fs-pg-"))
    server = LocalPostgres(base_dir=base_dir, port=free_port(), fast_and_unsafe=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server: LocalPostgres | None) -> Iterator[str]:
    """The test database's URL: created, migrated to head and seeded once per session.

    Exported as DATABASE_URL (and ENV=test) so that subprocesses (scripts, uvicorn)
    reach the same database.
    """
    url = os.environ.get("TEST_DATABASE_URL") or (pg_server.url(TEST_DATABASE) if pg_server else "")
    bootstrap(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        patch.setenv("ENV", "test")
        get_settings.cache_clear()
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, env="test", log_format="text")


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(to_sqlalchemy_url(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


@pytest.fixture
def dbs(db_session: AsyncSession) -> Databases:
    """Every app's data layer on the rolled-back test session."""
    return Databases(db_session)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The API with its lifespan running (engine, app background services)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


class _InTestTransaction(Database):
    """The app's database, with every request's session the test's own: what the test set
    up before a request stays, and the request gets a savepoint of its own, so a failing
    request rolls back only its own work, like a real one."""

    def __init__(self, database: Database, session: AsyncSession) -> None:
        super().__init__(database.engine)
        self.test_session = session

    def request_scope(self, read_only: bool) -> RequestScope:
        return _TestTransactionScope(self.test_session)

    @asynccontextmanager
    async def bookkeeping(self) -> AsyncIterator[AsyncSession]:
        """Committed at once, like the real one, but into the test's transaction."""
        yield self.test_session
        await self.test_session.commit()


class _TestTransactionScope(WriteScope):
    """``WriteScope``'s commit-or-roll-back rule on the test's session, which stays open:
    its commit releases the request's savepoint, its rollback returns to it."""

    async def finish(self, error: BaseException | None) -> None:
        await self.end_transaction(error)


@pytest.fixture
async def client(app: FastAPI, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests share the rolled-back test transaction."""
    real = app.state.database
    app.state.database = _InTestTransaction(real, db_session)

    async def in_test_transaction(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await db_session.commit()  # the test's setup is kept whatever the request does
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=in_test_transaction)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
    finally:
        app.state.database = real


async def reset_database(engine: AsyncEngine, database_url: str) -> None:
    """Empty every table (what a committed test made) and put the seeds back."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    if tables:
        async with engine.begin() as conn:
            # Append-only tables (feature_flag_history) refuse TRUNCATE by trigger;
            # replica mode skips triggers for this transaction (tests run as superuser).
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await seed(database_url)


@pytest.fixture
async def clean_database(engine: AsyncEngine, database_url: str) -> AsyncIterator[str]:
    """For tests that commit for real: the database is reset after the test."""
    try:
        yield database_url
    finally:
        await reset_database(engine, database_url)


@pytest.fixture
async def committed_client(app: FastAPI, clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real request transactions (commits are real)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def scratch_database_url(pg_server: LocalPostgres | None, database_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server (for migration and bootstrap tests)."""
    from fastapi_server.lib.database_url import with_database
    from init.bootstrap import drop_database

    name = f"scratch_{os.getpid()}_{free_port()}"
    url = with_database(database_url, name)
    asyncio.run(create_database_if_missing(url))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))
