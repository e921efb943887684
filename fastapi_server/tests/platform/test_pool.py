"""The connection pool serves waiting checkouts first come, first served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty, Full

from fastapi_server.config import Settings
from fastapi_server.resources.database.pool import FairAsyncQueuePool, FairQueue
from fastapi_server.resources.database.postgres import Database


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine as the API builds it, with a pool of one connection and no overflow."""
    small = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 5.0}
    )
    database = Database.from_settings(small, "test:pool")
    try:
        yield database.engine
    finally:
        await database.engine.dispose()


def _queue(engine: AsyncEngine) -> FairQueue[Any]:
    pool = engine.pool
    assert isinstance(pool, FairAsyncQueuePool)
    queue = pool._pool
    assert isinstance(queue, FairQueue)
    return queue


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_returned_connection_goes_to_the_longest_waiter_not_a_newcomer(
    one_connection: AsyncEngine,
) -> None:
    queue = _queue(one_connection)
    served: list[str] = []

    async def checkout(name: str) -> None:
        connection = await one_connection.raw_connection()
        served.append(name)
        await asyncio.sleep(0.01)  # a short query
        await greenlet_spawn(connection.close)

    held = await one_connection.raw_connection()
    first = asyncio.create_task(checkout("first"))
    await _until(lambda: queue.waiting() == 1)
    second = asyncio.create_task(checkout("second"))
    await _until(lambda: queue.waiting() == 2)
    # A request arriving as the connection comes back: its task runs before the
    # waiters' wake-ups, and the stock pool lets it take the connection.
    newcomer = asyncio.create_task(checkout("newcomer"))
    await greenlet_spawn(held.close)
    await asyncio.gather(first, second, newcomer)

    assert served == ["first", "second", "newcomer"]
    assert queue.qsize() == 1
    assert queue.waiting() == 0


def test_the_pool_logs_where_sqlalchemys_pool_does(one_connection: AsyncEngine) -> None:
    # Not under fastapi_server's loggers, which log INFO: "Pool disposed" at every exit.
    logger = one_connection.pool.logger
    assert isinstance(logger, logging.Logger)
    assert logger.name.startswith("sqlalchemy.pool.")


async def test_a_checkout_that_times_out_leaves_the_line(settings: Settings) -> None:
    small = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 0.2}
    )
    engine = Database.from_settings(small, "test:pool").engine
    try:
        queue = _queue(engine)
        held = await engine.raw_connection()
        with pytest.raises(PoolTimeout):
            await engine.raw_connection()
        assert queue.waiting() == 0
        assert not queue._waiters  # removed, not just finished
        later = asyncio.create_task(engine.raw_connection())
        await _until(lambda: queue.waiting() == 1)
        await greenlet_spawn(held.close)
        connection = await later
        await greenlet_spawn(connection.close)
        assert queue.qsize() == 1
    finally:
        await engine.dispose()


def _get(queue: FairQueue[str], timeout: float = 5.0) -> Awaitable[str]:
    return greenlet_spawn(queue.get, True, timeout)


async def test_an_item_handed_to_a_cancelled_waiter_goes_to_the_next() -> None:
    queue: FairQueue[str] = FairQueue(maxsize=1)
    cancelled = asyncio.ensure_future(_get(queue))
    await _until(lambda: queue.waiting() == 1)
    next_in_line = asyncio.ensure_future(_get(queue))
    await _until(lambda: queue.waiting() == 2)

    queue.put_nowait("connection")  # handed to the first waiter...
    cancelled.cancel()  # ...whose request is cancelled before it runs

    assert await next_in_line == "connection"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert queue.qsize() == 0
    assert queue.waiting() == 0


async def test_a_cancelled_waiters_item_is_kept_when_the_queue_filled_meanwhile() -> None:
    # With overflow: the waiter is handed one connection, another comes back before the
    # waiter runs (nobody left waiting: it goes idle), then the waiter's request is
    # cancelled. Both connections stay in the pool and the caller sees its cancellation.
    queue: FairQueue[str] = FairQueue(maxsize=1)
    waiter = asyncio.ensure_future(_get(queue))
    await _until(lambda: queue.waiting() == 1)
    queue.put_nowait("first")
    queue.put_nowait("second")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.qsize() == 2
    assert {await _get(queue), await _get(queue)} == {"first", "second"}


async def test_a_full_queue_refuses_an_item_and_an_empty_one_answers_at_once() -> None:
    queue: FairQueue[str] = FairQueue(maxsize=1)
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, False)
    with pytest.raises(Empty):
        await _get(queue, timeout=0.05)
    queue.put_nowait("a")
    with pytest.raises(Full):
        queue.put_nowait("b")  # an overflow connection coming back: the pool closes it
    assert await _get(queue) == "a"
