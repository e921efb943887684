"""One transaction per request, committed before the response; one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.config import Settings
from fastapi_server.lib.errors import AppError
from fastapi_server.lib.validation import SafeLine
from fastapi_server.main import create_app
from fastapi_server.resources.database.postgres import ReadOnlySessionError, rows
from fastapi_server.resources.http import DBSession, request_database

probe = Table("request_probe", MetaData(), Column("key", Integer))


class ProbeRejected(AppError):
    code = "PROBE_REJECTED"
    status_code = 409
    message = "The probe was rejected."


@pytest.fixture
async def probe_table(engine: AsyncEngine) -> AsyncIterator[None]:
    """A table whose unique key is checked only at COMMIT (deferred)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE request_probe (key int, CONSTRAINT request_probe_key "
                "UNIQUE (key) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE request_probe"))


@pytest.fixture
async def probe_client(settings: Settings, probe_table: None) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)

    @app.post("/probe/{key}")
    async def insert_key(key: int, session: DBSession, fail: str = "") -> dict[str, int]:
        await session.execute(text("INSERT INTO request_probe VALUES (:key)"), {"key": key})
        if fail == "domain":
            raise ProbeRejected(hint="try another key")
        if fail == "crash":
            raise RuntimeError("secret internals")
        return {"inserted": key}

    @app.get("/probe")
    async def read(session: DBSession, write: str = "", value: int = 1) -> dict[str, int]:
        if write == "orm-insert":
            await session.execute(insert(probe).values(key=value))
        count = (await session.execute(select(func.count()).select_from(probe))).scalar_one()
        return {"rows": int(count)}

    @app.get("/probe-direct")
    async def read_directly(request: Request) -> Response:
        # Taking only the Request: the database comes from the request itself.
        session = request_database(request).open()
        orm = (await session.execute(select(func.count()).select_from(probe))).scalar_one()
        (row,) = await rows(session, select(func.count().label("n")).select_from(probe))
        return Response(f"{orm} {row['n']}", media_type="text/plain")

    @app.post("/probe-name")
    async def named(body: dict[str, SafeLine]) -> dict[str, str]:
        return body

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM request_probe"))).scalar_one())


async def test_success_is_committed_before_the_response(
    probe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await probe_client.post("/probe/1")
    assert response.status_code == 200
    assert await _count(engine) == 1


async def test_failed_commit_never_answers_200(
    probe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await probe_client.post("/probe/7")
    duplicate = await probe_client.post("/probe/7")  # violates the key at COMMIT only
    assert duplicate.status_code == 500
    assert duplicate.json()["detail"]["code"] == "INTERNAL_ERROR"
    assert await _count(engine) == 1


async def test_domain_error_rolls_back_and_answers_its_code(
    probe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await probe_client.post("/probe/2", params={"fail": "domain"})
    assert response.status_code == 409
    assert response.json() == {
        "detail": {
            "code": "PROBE_REJECTED",
            "message": "The probe was rejected.",
            "hint": "try another key",
        }
    }
    assert await _count(engine) == 0


async def test_unhandled_error_is_500_without_internals_and_rolls_back(
    probe_client: httpx.AsyncClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    response = await probe_client.post("/probe/3", params={"fail": "crash"})
    assert response.status_code == 500
    body = response.json()
    assert body["detail"]["code"] == "INTERNAL_ERROR"
    assert "secret" not in response.text
    assert body["detail"]["request_id"] == response.headers["x-request-id"]
    assert any(
        getattr(record, "request_id", None) == body["detail"]["request_id"]
        for record in caplog.records
    )
    assert await _count(engine) == 0


async def test_validation_errors_are_422_with_their_list_under_detail_errors(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post("/probe/not-a-number")
    assert response.status_code == 422
    assert response.json()["detail"]["errors"][0]["loc"] == ["path", "key"]


async def test_get_reads_committed_data_without_a_transaction(
    probe_client: httpx.AsyncClient,
) -> None:
    await probe_client.post("/probe/1")
    response = await probe_client.get("/probe")
    assert response.json() == {"rows": 1}


async def test_an_endpoint_taking_the_request_has_the_requests_database(
    probe_client: httpx.AsyncClient,
) -> None:
    await probe_client.post("/probe/1")
    # More requests than the pool has connections (10): each gives its connection back.
    for _ in range(12):
        response = await probe_client.get("/probe-direct")
        assert response.text == "1 1"  # the ORM and a plain read both see the row


async def test_get_may_not_write(
    probe_client: httpx.AsyncClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    response = await probe_client.get("/probe", params={"write": "orm-insert", "value": 9})
    assert response.status_code == 500
    assert any(
        record.exc_info and isinstance(record.exc_info[1], ReadOnlySessionError)
        for record in caplog.records
    )
    assert await _count(engine) == 0


async def test_value_the_database_refuses_is_400_not_500(
    probe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await probe_client.post("/probe/99999999999")  # past PostgreSQL's int4
    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "INVALID_INPUT"
    assert await _count(engine) == 0


@pytest.mark.parametrize("bad", [r"nul\u0000byte", r"lone \ud800 surrogate", r"two\nlines"])
async def test_odd_characters_are_422_with_the_platform_shape(
    probe_client: httpx.AsyncClient, bad: str
) -> None:
    body = '{"name": "' + bad + '"}'  # raw JSON, with the escapes a client may send
    response = await probe_client.post(
        "/probe-name", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]["errors"][0]["loc"] == ["body", "name"]
