"""The engine (one per process) and the session per request (one transaction).

Reads that only serialise (the flag list and one flag, the caller of a GET) are Core
``select()``s run by ``rows``. In a read-only (GET) scope, ``DriverRead`` runs them with
the driver's ``fetch`` on the session's connection, the statement compiled once by
SQLAlchemy: its per-execution work cost about three times the driver's own per read, far
more than the 20% of requests per second these endpoints may give up for public APIs. In a
transaction they go through SQLAlchemy's execution, which owns BEGIN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import asyncpg
import sqlalchemy.exc
from asyncpg.exceptions import InternalClientError
from sqlalchemy import Connection, Dialect, Select, event, inspect
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    ORMExecuteState,
    Session,
    make_transient_to_detached,
)
from sqlalchemy.pool import QueuePool

from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.pool import AdmissionGate, AdmittedSession

_T = TypeVar("_T")
_M = TypeVar("_M", bound=DeclarativeBase)


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


async def rows(
    session: AsyncSession, statement: Select[Any], params: Mapping[str, Any] | None = None
) -> Sequence[Mapping[str, Any]]:
    """The rows of a Core ``select()`` (of columns, not entities) as dicts, run on the
    session's connection without the ORM's loading machinery: for reads that only
    serialise. Pending ORM changes are flushed first, so a transaction sees its own
    changes; in a read-only scope a read on a connection the server closed is retried
    (``retrying_read``). Errors are SQLAlchemy's ``DBAPIError``, like the ORM's.

    In a read-only scope the statement runs on the driver itself (``DriverRead``): the
    hot reads are these, and SQLAlchemy's execution of a statement costs about twice
    what the driver does. A transaction's reads go through ``AsyncConnection.execute``,
    which also begins the transaction where the read is its first statement.
    """

    async def read() -> Sequence[Mapping[str, Any]]:
        if session.new or session.dirty or session.deleted:
            await session.flush()
        connection = await session.connection()
        if is_read_only(session):
            return await DriverRead.of(statement, connection.dialect).run(connection, params)
        result = await connection.execute(statement, params)
        return [dict(row) for row in result.mappings()]

    return await retrying_read(session, read)


# What the driver raises (SQLAlchemy's execution wraps the same into ``DBAPIError``).
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError, OSError)


class DriverRead:
    """A Core ``select()`` compiled once for the engine's dialect and run with the driver's
    own ``fetch`` on the connection SQLAlchemy checked out (``rows``, read-only scopes).

    Statements stay SQLAlchemy Core: the SQL, the order of its ``$n`` parameters and their
    values come from SQLAlchemy's compiler (``Compiled.string``,
    ``SQLCompiler.positiontup``, ``construct_params``), each value passes through its
    type's bind processor and each result column through its type's result processor for
    the type the server reports, exactly as ``Connection.execute`` would. JSON columns
    therefore come back decoded (the dialect's on-connect codecs hand them over as text,
    the JSON type's result processor decodes them).

    What is skipped is SQLAlchemy's per-execution machinery (cache key, execution context,
    cursor, ``Result``, greenlet switches): per read of the flag list, about 350 µs of CPU
    against the driver's 100 µs (``cProfile`` with ``time.process_time``). No documented
    execution option removes it, while 20% of a hot endpoint's requests per second was
    all it could cost.

    A driver error is raised as SQLAlchemy's ``DBAPIError`` (``DataError`` for a refused
    value). When the server had closed the connection, the statement is run once through
    ``AsyncConnection.execute`` instead, so that SQLAlchemy's disconnect handling applies:
    it drops the connection, replaces every pooled one opened before it, and reports
    ``connection_invalidated`` for ``retrying_read``.
    """

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        if any(bind.expanding for bind in binds.values()):
            raise ValueError("DriverRead runs no expanding (IN list) parameters")
        self.statement = statement
        self.dialect = dialect
        self.compiled = compiled
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        self.bind_processors = [
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        ]
        self.keys = tuple(statement.selected_columns.keys())
        self.types = [column.type.dialect_impl(dialect) for column in statement.selected_columns]
        # Known after the first run, from the column types the server reports.
        self.result_processors: list[Callable[[Any], Any] | None] | None = None

    @classmethod
    @functools.lru_cache(maxsize=256)
    def of(cls, statement: Select[Any], dialect: Dialect) -> DriverRead:
        """The ``DriverRead`` of ``statement``, compiled on its first use only."""
        return cls(statement, dialect)

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        """The positional values: ``params`` over the statement's own, bind-processed."""
        values = self.compiled.construct_params(params)
        return [
            value if process is None else process(value)
            for value, process in zip(
                (values[name] for name in self.names), self.bind_processors, strict=True
            )
        ]

    async def run(
        self, connection: AsyncConnection, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The statement's rows as dicts, fetched by the driver on ``connection``."""
        args = self.arguments(params)
        driver = (await connection.get_raw_connection()).driver_connection
        if driver is None:  # invalidated: SQLAlchemy's execution says why
            result = await connection.execute(self.statement, params)
            return [dict(row) for row in result.mappings()]
        try:
            if self.result_processors is None:  # once per process: the column types
                self.describe((await driver.prepare(self.sql)).get_attributes())
            records = await driver.fetch(self.sql, *args)
        except _DRIVER_ERRORS as exc:
            if driver.is_closed():
                await connection.execute(self.statement, params)  # raises, as described
            raise DBAPIError.instance(self.sql, args, exc, Exception, hide_parameters=True) from exc
        return self.mapped(records)

    def describe(self, attributes: Sequence[asyncpg.Attribute]) -> None:
        """Set the result processors from the column types the server reports. A
        statement whose columns SQLAlchemy does not know (``text()``) keeps the server's
        names and values."""
        if len(attributes) != len(self.types):
            self.keys = tuple(attribute.name for attribute in attributes)
            self.result_processors = [None] * len(attributes)
            return
        self.result_processors = [
            type_.result_processor(self.dialect, attribute.type.oid)
            for type_, attribute in zip(self.types, attributes, strict=True)
        ]

    def mapped(self, records: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
        keys, processors = self.keys, self.result_processors or ()
        if not any(processors):
            return [dict(zip(keys, record.values(), strict=True)) for record in records]
        return [
            {
                key: value if process is None else process(value)
                for key, value, process in zip(keys, record.values(), processors, strict=True)
            }
            for record in records
        ]


def detached(model: type[_M], values: Mapping[str, Any]) -> _M:
    """An instance of the mapped class ``model`` holding ``values`` (a row of its table,
    keyed by attribute) as the ORM's loader leaves one: no change history, in no session
    (``make_transient_to_detached``).

    The values go straight into the instance's state dict, as the loader puts them: the
    mapped constructor would run an attribute event per column, several times the cost
    of the read's own Python work."""
    instance = model()
    inspect(instance).dict.update(values)
    make_transient_to_detached(instance)
    return instance


async def retrying_read(session: AsyncSession, read: Callable[[], Awaitable[_T]]) -> _T:
    """``read()``, run once more on a fresh connection when, in a read-only scope, it found
    its connection closed by the server (after a restart, every pooled one is).

    A read-only scope is in autocommit, each statement its own transaction, so nothing is
    lost by the retry. SQLAlchemy, on seeing the disconnect, has dropped that connection
    and replaces every one opened before it at its next checkout, so the retry gets a
    live one. In a transaction the error is raised: its work so far is gone.
    """
    try:
        return await read()
    except DBAPIError as exc:
        if not (exc.connection_invalidated and is_read_only(session)):
            raise
    await session.rollback()  # lets the dead connection go; the next statement takes another
    return await read()


def is_read_only(session: AsyncSession) -> bool:
    """True for a read-only scope's session (autocommit, refusing writes)."""
    return isinstance(session.sync_session, _ReadOnlySession)


class ReadScope:
    """A read-only (GET) request's database access; nothing is checked out until used.

    ``session`` is an ORM session in autocommit (each statement its own transaction,
    seeing committed data) that refuses writes. With ``in_transaction`` (behind PgBouncer,
    where the statement timeout is set per transaction) it runs in one transaction
    instead, rolled back at the end.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        autocommit_engine: AsyncEngine,
        gate: AdmissionGate,
        *,
        in_transaction: bool = False,
    ) -> None:
        self.session = AdmittedSession(
            bind=engine if in_transaction else autocommit_engine,
            expire_on_commit=False,
            sync_session_class=_ReadOnlySession,
            gate=gate,
        )

    async def close(self) -> None:
        if self.session.admitted:  # the session was used: give its connection back
            await self.session.close()

    @property
    def holds_resources(self) -> bool:
        """Whether the session was used (it holds its place and connection until ``close``)."""
        return self.session.admitted

    async def finish(self, error: BaseException | None) -> None:
        await self.close()


class WriteScope:
    """A request's database access when it may write: one session in one transaction
    (begun on first use), committed by ``finish`` unless an error says otherwise."""

    holds_resources = True

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
    def holds_resources(self) -> bool:
        """Whether ``finish`` has work to do."""
        ...

    async def finish(self, error: BaseException | None) -> None:
        """End the request's database work; ``error`` is what the request raised, if any."""
        ...


class Database:
    """An ``AsyncEngine`` and its sessionmaker: made once per process, disposed at exit."""

    def __init__(
        self,
        engine: AsyncEngine,
        max_connections: float = math.inf,
        wait_s: float | None = None,
        *,
        reads_in_transaction: bool = False,
    ) -> None:
        self.engine = engine
        # At most as many sessions using the database at once as the pool has connections,
        # the others served in arrival order (``pool.py``); each waits up to ``wait_s``.
        self.gate = AdmissionGate(max_connections, wait_s)
        self.sessionmaker = async_sessionmaker(
            engine, class_=AdmittedSession, expire_on_commit=False, gate=self.gate
        )
        # The same engine and pool, with connections handed out in autocommit: a read
        # then costs one round trip instead of BEGIN, the query and ROLLBACK.
        self.autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Behind PgBouncer the statement timeout exists only inside a transaction.
        self.reads_in_transaction = reads_in_transaction

    @classmethod
    def from_settings(cls, settings: Settings, application_name: str) -> Database:
        """Build the engine from Settings; ``application_name`` shows in pg_stat_activity."""
        if not settings.database_url:
            raise DatabaseNotConfigured(
                "DATABASE_URL is not set. Start the API with `python3 manage.py serve` "
                "(it starts a local PostgreSQL) or set DATABASE_URL."
            )
        engine = create_async_engine(
            to_sqlalchemy_url(settings.database_url),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_pre_ping=settings.db_pool_pre_ping,
            hide_parameters=True,  # error messages and logs never carry emails or hashes
            connect_args=connect_args(settings, application_name),
        )
        timeout_ms = settings.db_statement_timeout_ms
        if settings.db_pgbouncer and timeout_ms:
            _set_timeout_per_transaction(engine, timeout_ms)
        max_connections = settings.db_pool_size + settings.db_max_overflow
        return cls(
            engine,
            max_connections,
            settings.db_pool_timeout,
            reads_in_transaction=settings.db_pgbouncer and bool(timeout_ms),
        )

    @classmethod
    def for_tool(cls, url: str, application_name: str) -> Database:
        """A one-connection engine for a command-line tool (scripts, bootstrap, workers)."""
        settings = Settings(database_url=url, db_pool_size=1, db_max_overflow=0)
        return cls.from_settings(settings, application_name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session:
            await session.admit()  # its commit, even with nothing but added rows, has a place
            async with session.begin():
                yield session

    @asynccontextmanager
    async def bookkeeping(self) -> AsyncIterator[AsyncSession]:
        """A session apart from the request's, for counts that must hold whatever the
        request then does (rate limits), taken before the request's own work, so it holds
        no connection while that work waits.

        Each statement commits on its own (autocommit): one round trip, where BEGIN and
        COMMIT around it would make three. So each statement run here must be whole by
        itself, as the rate limits' single upsert is; ORM changes are flushed at the end.
        Behind PgBouncer, where the statement timeout exists only inside a transaction,
        it is one transaction."""
        if self.reads_in_transaction:
            async with self.transaction() as session:
                yield session
            return
        async with self.sessionmaker(bind=self.autocommit_engine) as session:
            yield session
            await session.commit()  # flushes what was added; sends no COMMIT

    def request_scope(self, read_only: bool) -> RequestScope:
        """A request's database access (``resources/http.py``): a ``ReadScope`` for a
        read-only request, else a ``WriteScope``. Nothing is checked out until used."""
        if read_only:
            return ReadScope(
                self.engine,
                self.autocommit_engine,
                self.gate,
                in_transaction=self.reads_in_transaction,
            )
        return WriteScope(self.sessionmaker())

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[ReadScope]:
        """Database access for reading only, without BEGIN/COMMIT around the statements.

        Each statement runs in its own implicit transaction (autocommit) and sees
        committed data, so a single-query read costs one round trip. Writing through the
        ORM raises ``ReadOnlySessionError``.
        """
        scope = ReadScope(
            self.engine, self.autocommit_engine, self.gate, in_transaction=self.reads_in_transaction
        )
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


def connect_args(
    settings: Settings, application_name: str, *, statement_timeout: bool = True
) -> dict[str, Any]:
    """asyncpg's connection arguments, as SQLAlchemy's ``connect_args``: the connection's
    name (``pg_stat_activity``), the statement timeout, and what PgBouncer needs.

    Direct to PostgreSQL, the statement timeout is a startup parameter of the connection.
    PgBouncer refuses startup parameters other than a few (``application_name`` is one of
    them), so behind it the timeout is set per transaction (``SET LOCAL``) instead. In its
    transaction pooling mode, consecutive transactions of one client connection may run on
    different server connections, and PgBouncer before 1.21 does not carry prepared
    statements across: asyncpg's statement cache is off, so asyncpg sends each query's
    Parse again with its Bind (asyncpg 0.29 and later) and names no statement; SQLAlchemy's
    own cache is off and its statements are unnamed too, so no statement outlives the
    message batch that uses it.
    """
    server_settings = {"application_name": application_name[:63]}
    args: dict[str, Any] = {"server_settings": server_settings}
    if settings.db_pgbouncer:
        args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unnamed_statement,
        }
    elif statement_timeout and settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return args


def driver_options(settings: Settings) -> dict[str, Any]:
    """Options for a plain ``asyncpg.connect`` to DATABASE_URL (see ``connect_args``)."""
    return {"statement_cache_size": 0} if settings.db_pgbouncer else {}


def _unnamed_statement() -> str:
    return ""  # PostgreSQL's unnamed statement, replaced by the next Parse


def _set_timeout_per_transaction(engine: AsyncEngine, timeout_ms: int) -> None:
    """Begin every transaction with ``SET LOCAL statement_timeout`` (autocommit excepted)."""
    statement = f"SET LOCAL statement_timeout = {int(timeout_ms)}"

    @event.listens_for(engine.sync_engine, "begin")
    def _set_timeout(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql(statement)


DatabaseError = DBAPIError
"""Any error the database driver raised (``resources/errors.py`` handles it)."""

DriverError = sqlalchemy.exc.EmulatedDBAPIException
"""The driver's error as SQLAlchemy's asyncpg adapter raises it where nothing wraps it in a
``DatabaseError`` (opening a connection for the pool, e.g. while the server starts up)."""

PoolTimeout = sqlalchemy.exc.TimeoutError
"""No pooled connection came free within ``db_pool_timeout`` (answered 503)."""


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


# What the database being away looks like: the server refuses or drops connections, is
# shutting down or starting up, or every pooled connection stays busy past pool_timeout.
_UNAVAILABLE = (
    ConnectionError,  # refused, reset, aborted
    TimeoutError,  # connecting took too long
    PoolTimeout,
    asyncpg.InterfaceError,  # the connection was closed under the statement (or never opened)
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """True when the error means the database cannot be reached right now (the request
    may well succeed a moment later), as opposed to a fault in the request or in us."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short: ours, SQLAlchemy's, the driver's, the OS's
        if seen is None:
            return False
        if isinstance(seen, _UNAVAILABLE):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None) or seen.__context__
    return False
