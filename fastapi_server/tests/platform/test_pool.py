"""Requests wait for the database at an admission gate, first come, first served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.pool import AdmissionGate
from fastapi_server.resources.database.postgres import Database


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[Database]:
    """A database as the API builds it, with a pool of one connection and no overflow."""
    small = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 5.0}
    )
    database = Database.from_settings(small, "test:pool")
    try:
        yield database
    finally:
        await database.dispose()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_freed_place_goes_to_the_longest_waiter_not_a_newcomer(
    one_connection: Database,
) -> None:
    database = one_connection
    served: list[str] = []

    async def transaction(name: str) -> None:
        async with database.transaction() as session:
            await session.execute(text("SELECT 1"))
            served.append(name)
            await asyncio.sleep(0.01)  # a short query

    await database.gate.enter()  # a request holding the only connection
    first = asyncio.create_task(transaction("first"))
    await _until(lambda: database.gate.waiting() == 1)
    second = asyncio.create_task(transaction("second"))
    await _until(lambda: database.gate.waiting() == 2)
    # A request arriving as the place is freed: its task runs before the first waiter's
    # wake-up, and an unfair gate (or the stock pool alone) lets it in first.
    newcomer = asyncio.create_task(transaction("newcomer"))
    database.gate.leave()
    await asyncio.gather(first, second, newcomer)

    assert served == ["first", "second", "newcomer"]
    assert (database.gate.inside, database.gate.waiting()) == (0, 0)


async def test_a_wait_that_times_out_leaves_the_line(settings: Settings) -> None:
    small = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 0.2}
    )
    database = Database.from_settings(small, "test:pool")
    try:
        async with database.transaction():
            with pytest.raises(PoolTimeout):
                async with database.reads() as scope:
                    await scope.session.execute(text("SELECT 1"))
            assert database.gate.waiting() == 0
            later = asyncio.create_task(database.gate.enter())
            await _until(lambda: database.gate.waiting() == 1)
        await later  # the transaction's place went to the one waiting since
        assert database.gate.inside == 1
        database.gate.leave()
        assert database.gate.inside == 0
    finally:
        await database.dispose()


async def test_a_place_handed_to_a_cancelled_waiter_goes_to_the_next() -> None:
    gate = AdmissionGate(1)
    await gate.enter()
    cancelled = asyncio.create_task(gate.enter())
    await _until(lambda: gate.waiting() == 1)
    next_in_line = asyncio.create_task(gate.enter())
    await _until(lambda: gate.waiting() == 2)

    gate.leave()  # handed to the first waiter...
    cancelled.cancel()  # ...whose request is cancelled before it runs

    await next_in_line
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (gate.inside, gate.waiting()) == (1, 0)
    gate.leave()
    assert gate.inside == 0


async def test_many_requests_over_a_small_pool_are_all_served(settings: Settings) -> None:
    small = settings.model_copy(update={"db_pool_size": 2, "db_pool_timeout": 5.0})
    app = create_app(small)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            responses = await asyncio.gather(*(http.get("/feature-flags") for _ in range(30)))
        gate = app.state.database.gate
    assert [response.status_code for response in responses] == [200] * 30
    assert (gate.inside, gate.waiting()) == (0, 0)  # every place given back (worker stopped)
