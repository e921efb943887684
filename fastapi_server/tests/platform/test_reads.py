"""Plain-row reads (``Reader``): on the request's transaction, or borrowed from the pool."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.feature_flags.models import FeatureFlag
from fastapi_server.resources.database.postgres import Database, Reader, is_refused_value
from fastapi_server.resources.http import DBs


async def test_reads_on_a_transaction_see_its_pending_changes(db_session: AsyncSession) -> None:
    db_session.add(FeatureFlag(codename="FF_PENDING", label="Not flushed yet"))
    row = await Reader(db_session).fetchrow(
        "SELECT label FROM feature_flags WHERE codename = $1", "FF_PENDING"
    )
    assert row is not None
    assert row["label"] == "Not flushed yet"


async def test_a_refused_value_is_a_sqlalchemy_data_error(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    with pytest.raises(DataError) as on_transaction:
        await Reader(db_session).fetchrow("SELECT $1::int", "not a number")
    assert is_refused_value(on_transaction.value)
    async with Database(engine).reads() as scope:
        with pytest.raises(DataError) as borrowed:
            await scope.reader.fetchrow("SELECT 1 / 0")
    assert is_refused_value(borrowed.value)


async def test_a_read_only_scope_holds_one_connection_at_most(engine: AsyncEngine) -> None:
    database = Database(engine)
    async with database.reads() as scope:
        before = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        await scope.reader.fetch("SELECT 1")
        assert engine.sync_engine.pool.checkedout() == before  # type: ignore[attr-defined]
        orm_pid = (await scope.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        row = await scope.reader.fetchrow("SELECT pg_backend_pid() AS pid")
        assert row is not None
        assert row["pid"] == orm_pid  # once the ORM holds a connection, reads use it


async def test_get_reads_go_on_after_the_server_closed_their_connections(
    app: FastAPI, engine: AsyncEngine
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # several requests at once, so that the pool holds several connections
        first = await asyncio.gather(*(http.get("/feature-flags") for _ in range(5)))
        assert [response.status_code for response in first] == [200] * 5
        async with engine.connect() as conn:
            closed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'api' AND pid <> pg_backend_pid()"
                )
            )
        assert closed
        after = [await http.get("/feature-flags") for _ in range(12)]
    assert [response.status_code for response in after] == [200] * 12


async def test_a_route_without_the_database_route_class_fails_clearly(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    plain = APIRouter()

    @plain.get("/_probe/plain")
    async def plain_route(dbs: DBs) -> dict[str, int]:
        return {"flags": len(await dbs.feature_flags.read_all())}

    app.include_router(plain)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/_probe/plain")
    assert response.status_code == 500
    assert response.json()["detail"]["code"] == "INTERNAL_ERROR"
    assert "route_class=DatabaseRoute" in caplog.text
