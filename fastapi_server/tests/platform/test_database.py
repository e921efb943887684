"""Core reads (``rows``) on a request's session, and read-only scopes after a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    Numeric,
    String,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.feature_flags.models import FeatureFlag
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import (
    Database,
    DatabaseError,
    ReadOnlySessionError,
    is_refused_value,
    rows,
)
from fastapi_server.resources.database.rate_limits import RateLimitsDB
from fastapi_server.tests.helpers.statements import recorded_statements
from fastapi_server.tests.helpers.users import auth_headers, make_user


async def test_reads_on_a_transaction_see_its_pending_changes(db_session: AsyncSession) -> None:
    db_session.add(FeatureFlag(codename="FF_PENDING", label="Not flushed yet"))
    found = await rows(
        db_session, select(FeatureFlag.label).where(FeatureFlag.codename == "FF_PENDING")
    )
    assert [dict(row) for row in found] == [{"label": "Not flushed yet"}]


async def test_a_refused_value_is_a_database_error_known_as_refused(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    as_int = select(cast(bindparam("value", type_=String), Integer))
    with pytest.raises(DatabaseError) as on_transaction:
        await rows(db_session, as_int, {"value": "not a number"})
    assert is_refused_value(on_transaction.value)
    async with Database(engine).reads() as scope:
        with pytest.raises(DatabaseError) as read_only:
            await rows(scope.session, select(text("1 / 0")))
    assert is_refused_value(read_only.value)


async def test_a_read_only_scope_reads_the_values_sqlalchemy_reads(engine: AsyncEngine) -> None:
    """Read-only scopes run reads with the driver's fetch; the values are SQLAlchemy's."""
    values = select(
        literal({"a": [1, None]}, JSON).label("json"),
        literal({"b": True}, JSONB).label("jsonb"),
        literal(Decimal("1.50"), Numeric(10, 2)).label("numeric"),
        cast(literal(2.5), Numeric(asdecimal=False)).label("as_float"),
        func.gen_random_uuid().label("uuid"),
        bindparam("when", type_=DateTime(timezone=True)).label("when"),
        literal("é").label("text"),
    )
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with Database(engine).reads() as scope:
        (read,) = await rows(scope.session, values, {"when": when})
        expected = (await scope.session.execute(values, {"when": when})).mappings().one()
    assert read.keys() == expected.keys()
    same = {key: read[key] for key in read if key != "uuid"}
    assert same == {key: expected[key] for key in expected if key != "uuid"}
    assert same == {
        "json": {"a": [1, None]},
        "jsonb": {"b": True},
        "numeric": Decimal("1.50"),
        "as_float": 2.5,
        "when": when,
        "text": "é",
    }
    assert type(read["uuid"]) is type(expected["uuid"])
    assert isinstance(read["uuid"], uuid.UUID)


async def test_a_read_only_scope_reads_on_one_connection_and_refuses_writes(
    engine: AsyncEngine,
) -> None:
    async with Database(engine).reads() as scope:
        orm_pid = (await scope.session.execute(select(func.pg_backend_pid()))).scalar_one()
        (row,) = await rows(scope.session, select(func.pg_backend_pid().label("pid")))
        assert row["pid"] == orm_pid
        scope.session.add(FeatureFlag(codename="FF_NEVER", label="Never written"))
        with pytest.raises(ReadOnlySessionError):
            await rows(scope.session, select(FeatureFlag.codename))


@pytest.mark.parametrize("behind_pgbouncer", [False, True], ids=["direct", "pgbouncer"])
async def test_a_rate_limit_count_is_committed_by_its_own_statement(
    engine: AsyncEngine, clean_database: str, behind_pgbouncer: bool
) -> None:
    """The count outlives the request without BEGIN and COMMIT around it (one round
    trip); behind PgBouncer, where the statement timeout needs a transaction, in one."""
    key = f"test:ip:{uuid.uuid4()}"
    database = Database(engine, reads_in_transaction=behind_pgbouncer)
    async with recorded_statements(engine) as recorded, database.bookkeeping() as session:
        hits = await RateLimitsDB(session).hit({key: 60})
    assert hits[key].hits == 1
    # What each statement is, in no order: the driver's own are logged a loop turn later.
    sent = sorted(s.split()[0].rstrip(";") for s in recorded)
    sent = [word for word in sent if word in ("BEGIN", "INSERT", "COMMIT", "ROLLBACK")]
    assert sent == (["BEGIN", "COMMIT", "INSERT"] if behind_pgbouncer else ["INSERT"])
    async with engine.connect() as conn:  # another connection sees it: committed
        counted = text("SELECT hits FROM rate_limit_counters WHERE key = :key")
        assert await conn.scalar(counted, {"key": key}) == 1


async def _close_api_connections(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        closed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'api' AND pid <> pg_backend_pid()"
            )
        )
    assert closed


async def test_get_reads_go_on_after_the_server_closed_their_connections(
    app: FastAPI, engine: AsyncEngine
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # several requests at once, so that the pool holds several connections
        first = await asyncio.gather(*(http.get("/feature-flags") for _ in range(5)))
        assert [response.status_code for response in first] == [200] * 5
        await _close_api_connections(engine)
        after = [await http.get("/feature-flags") for _ in range(12)]
    assert [response.status_code for response in after] == [200] * 12


async def test_the_caller_is_read_again_after_the_server_closed_the_connections(
    app: FastAPI, engine: AsyncEngine, clean_database: str
) -> None:
    async with Database(engine).transaction() as session:
        user = await make_user(Databases(session))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = await http.get("/users/user", headers=auth_headers(user))
        assert first.status_code == 200
        await _close_api_connections(engine)
        after = await http.get("/users/user", headers=auth_headers(user))
    assert after.status_code == 200
    assert after.json()["email"] == user.email
