"""The engine (one per process) and the session per request (one transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session

from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.lib.errors import AppError


class DatabaseNotConfigured(RuntimeError):
    """DATABASE_URL is missing where a database is needed."""


class ReadOnlySessionError(RuntimeError):
    """Something tried to write during a read-only (GET) request."""


class _ReadOnlySession(Session):
    """Refuses ORM changes and INSERT/UPDATE/DELETE statements (a GET writes nothing)."""

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        if self.new or self.dirty or self.deleted:
            raise ReadOnlySessionError("a read-only (GET) request tried to write")
        super().flush(objects)


@event.listens_for(_ReadOnlySession, "do_orm_execute")
def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("a read-only (GET) request tried to write")


class Database:
    """An ``AsyncEngine`` and its sessionmaker: made once per process, disposed at exit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, application_name: str) -> Database:
        """Build the engine from Settings; ``application_name`` shows in pg_stat_activity."""
        if not settings.database_url:
            raise DatabaseNotConfigured(
                "DATABASE_URL is not set. Start the API with `python3 manage.py serve` "
                "(it starts a local PostgreSQL) or set DATABASE_URL."
            )
        server_settings = {"application_name": application_name[:63]}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        engine = create_async_engine(
            to_sqlalchemy_url(settings.database_url),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_pre_ping=settings.db_pool_pre_ping,
            hide_parameters=True,  # error messages and logs never carry emails or hashes
            connect_args={"server_settings": server_settings},
        )
        return cls(engine)

    @classmethod
    def for_tool(cls, url: str, application_name: str) -> Database:
        """A one-connection engine for a command-line tool (scripts, bootstrap, workers)."""
        settings = Settings(database_url=url, db_pool_size=1, db_max_overflow=0)
        return cls.from_settings(settings, application_name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only, without BEGIN/COMMIT around the statements.

        Each statement runs in its own implicit transaction (autocommit) and sees
        committed data; a single-query read then costs one round trip instead of three.
        Writing through the ORM raises ``ReadOnlySessionError``.
        """
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(
                bind=connection, expire_on_commit=False, sync_session_class=_ReadOnlySession
            ) as session:
                yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


DatabaseError = DBAPIError
"""Any error the database driver raised (``main.py`` handles it)."""


def is_refused_value(exc: BaseException) -> bool:
    """True when the error is about a value itself: PostgreSQL's class 22 (bad encoding,
    NUL byte, out of range) or asyncpg refusing to encode an argument. Schemas should
    catch such values first; this is the safety net that makes the rest a 400."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (DataError, asyncpg.DataError)):
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: one transaction, committed before the response is sent.

    Used with ``scope="function"`` (see ``DBSession``): the code after ``yield`` runs
    when the endpoint returns, before FastAPI sends the response, so a failed commit
    answers 500 instead of following a 200. Any exception rolls back, except an
    ``AppError`` with ``keeps_changes``: its bookkeeping is committed, then it is
    answered. GET (and HEAD, OPTIONS) requests write nothing, so they get a read-only
    session without BEGIN/COMMIT round trips (``Database.reads``).
    """
    database: Database = request.app.state.database
    if request.method in READ_ONLY_METHODS:
        async with database.reads() as session:
            yield session
        return
    kept: AppError | None = None
    async with database.transaction() as session:
        try:
            yield session
        except AppError as exc:
            if not exc.keeps_changes:
                raise
            kept = exc  # leaving the block normally commits
    if kept is not None:
        raise kept


DBSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
