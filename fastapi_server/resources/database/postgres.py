"""The engine (one per process) and the session per request (one transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from asyncpg.exceptions import InternalClientError
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn

from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.pool import FairAsyncQueuePool

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


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


# While traces are exported (resources/tracing.py), the tracer of the reads below: they
# bypass SQLAlchemy, whose instrumentation traces every other statement. None: no cost.
read_tracer: Tracer | None = None


class Reader:
    """Plain-row reads for hot paths: asyncpg records, without the ORM's session machinery.

    A query is SQL text with ``$1``-style parameters; the rows are ``asyncpg.Record``
    (read like mappings: ``row["email"]``); ``json``/``jsonb`` columns come back as text.
    On a request's transaction the reads see its own changes (pending ORM changes are
    flushed first). In a read-only (GET) scope each read borrows a pooled connection for
    its one statement (or uses the session's, once the ORM holds one, so a request never
    holds two), and a read that finds its connection closed by the server is retried once
    on another. Errors are SQLAlchemy's ``DBAPIError`` (``DataError`` for a refused value),
    like the ORM's.
    """

    def __init__(self, session: AsyncSession, engine: AsyncEngine | None = None) -> None:
        self._session = session
        self._engine = engine  # set for read-only scopes: reads may borrow a connection

    @property
    def read_only(self) -> bool:
        """True in a read-only (GET) scope: autocommit, and the ORM refuses writes."""
        return self._engine is not None

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", query, args)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        tracer = read_tracer
        if tracer is None:
            return await self._run_untraced(method, query, args)
        from opentelemetry.trace import SpanKind

        operation = query.lstrip().split(None, 1)[0].upper() if query.strip() else "SQL"
        attributes = {"db.system": "postgresql", "db.statement": query}
        with tracer.start_as_current_span(operation, kind=SpanKind.CLIENT, attributes=attributes):
            return await self._run_untraced(method, query, args)

    async def _run_untraced(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        session = self._session
        try:
            if self._engine is not None and not session.in_transaction():
                return await self._borrowed(self._engine, method, query, args)
            if session.new or session.dirty or session.deleted:
                await session.flush()
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            return await getattr(driver, method)(query, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError) as exc:
            raise DBAPIError.instance(query, args, exc, Exception, hide_parameters=True) from exc

    @staticmethod
    async def _borrowed(engine: AsyncEngine, method: str, query: str, args: tuple[Any, ...]) -> Any:
        """Run on a connection straight from the pool, without a SQLAlchemy Connection
        around it: no transaction is begun (asyncpg runs the statement on its own), and
        the pool's reset on return has nothing to roll back."""
        for attempt in (1, 2):
            pooled = await engine.raw_connection()
            driver = pooled.driver_connection
            try:
                return await getattr(driver, method)(query, *args)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError) as exc:
                if not _connection_lost(exc, driver):
                    raise
                # What SQLAlchemy does on a disconnect: this connection is dropped, and
                # every one opened before it is replaced at its next checkout (after a
                # server restart they are all dead), so the retry gets a live one.
                await greenlet_spawn(engine.sync_engine.pool._invalidate, pooled, exc)
                if attempt == 2:
                    raise
            finally:
                if pooled.is_valid:
                    await greenlet_spawn(pooled.close)
        raise AssertionError("unreachable")


# Errors after which a connection is not used again (the server closed it, or the
# protocol is in an unknown state). A cancelled statement (statement_timeout) is not one.
_LOST = (
    asyncpg.InterfaceError,
    InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _connection_lost(exc: BaseException, driver: Any) -> bool:
    return driver is None or driver.is_closed() or isinstance(exc, _LOST)


class ReadScope:
    """A read-only (GET) request's database access; nothing is checked out until used.

    ``session`` is an ORM session in autocommit (each statement its own transaction,
    seeing committed data) that refuses writes; ``reader`` runs plain-row reads.
    """

    def __init__(self, engine: AsyncEngine, autocommit_engine: AsyncEngine) -> None:
        self.session = AsyncSession(
            bind=autocommit_engine, expire_on_commit=False, sync_session_class=_ReadOnlySession
        )
        self.reader = Reader(self.session, engine)

    async def close(self) -> None:
        if self.session.in_transaction():  # the ORM was used: give its connection back
            await self.session.close()

    @property
    def holds_resources(self) -> bool:
        """Whether the ORM was used (plain-row reads give their connection back at once)."""
        return self.session.in_transaction()

    async def finish(self, error: BaseException | None) -> None:
        await self.close()


class WriteScope:
    """A request's database access when it may write: one session in one transaction
    (begun on first use), committed by ``finish`` unless an error says otherwise."""

    holds_resources = True

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.reader = Reader(session)

    async def finish(self, error: BaseException | None) -> None:
        """End the transaction (``end_transaction``), then close the session."""
        try:
            await self.end_transaction(error)
        finally:
            await self.session.close()

    async def end_transaction(self, error: BaseException | None) -> None:
        """Commit (no error, or one that ``keeps_changes``) or roll back."""
        if error is None or (isinstance(error, AppError) and error.keeps_changes):
            await self.session.commit()
        else:
            await self.session.rollback()


class RequestScope(Protocol):
    """One request's database access, as ``Database.request_scope`` hands it out."""

    @property
    def session(self) -> AsyncSession: ...

    @property
    def reader(self) -> Reader: ...

    @property
    def holds_resources(self) -> bool:
        """Whether ``finish`` has work to do."""
        ...

    async def finish(self, error: BaseException | None) -> None:
        """End the request's database work; ``error`` is what the request raised, if any."""
        ...


class Database:
    """An ``AsyncEngine`` and its sessionmaker: made once per process, disposed at exit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        # The same engine and pool, with connections handed out in autocommit: a read
        # then costs one round trip instead of BEGIN, the query and ROLLBACK.
        self.autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")

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
            poolclass=FairAsyncQueuePool,  # waiting requests are served in order
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

    def request_scope(self, read_only: bool) -> RequestScope:
        """A request's database access (``resources/http.py``): a ``ReadScope`` for a
        read-only request, else a ``WriteScope``. Nothing is checked out until used."""
        if read_only:
            return ReadScope(self.engine, self.autocommit_engine)
        return WriteScope(self.sessionmaker())

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[ReadScope]:
        """Database access for reading only, without BEGIN/COMMIT around the statements.

        Each statement runs in its own implicit transaction (autocommit) and sees
        committed data, so a single-query read costs one round trip. Writing through the
        ORM raises ``ReadOnlySessionError``.
        """
        scope = ReadScope(self.engine, self.autocommit_engine)
        try:
            yield scope
        finally:
            await scope.close()

    def connections_in_use(self) -> int:
        """Connections of this engine's pool checked out right now."""
        pool = self.engine.pool
        return pool.checkedout() if isinstance(pool, QueuePool) else 0

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
