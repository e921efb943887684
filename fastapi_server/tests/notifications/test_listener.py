"""The delivery worker's LISTEN connection (``database/listener.py``) on real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from fastapi_server.apps.notifications.database.listener import OutboxListener
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.waiting import eventually
from fastapi_server.tests.notifications.conftest import enqueue_committed

NAME = "listener-test"


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[tuple[OutboxListener, list[int]]]:
    """A running listener whose ``wake`` calls are counted."""
    wakes: list[int] = []
    running = OutboxListener(
        to_asyncpg_dsn(database_url), name=NAME, wake=lambda: wakes.append(1), retry_seconds=0.05
    )
    task = asyncio.create_task(running.run())

    async def listening() -> bool:
        return running.listening

    await eventually(listening, what="the listener to LISTEN")
    yield running, wakes
    running.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)


async def _backend_pids(database: Database) -> list[int]:
    async with database.transaction() as session:
        pids = await session.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": f"notifications:{NAME}"},
        )
        return list(pids)


async def test_a_committed_message_wakes_the_listener(
    listener: tuple[OutboxListener, list[int]], committed: Database
) -> None:
    _, wakes = listener
    assert wakes == [1]  # on connecting: for what was committed before
    await enqueue_committed(committed, ["ada@example.com"])

    async def woken() -> bool:
        return len(wakes) == 2

    await eventually(woken, what="the NOTIFY of the commit")


async def test_a_killed_connection_is_replaced_and_still_wakes(
    listener: tuple[OutboxListener, list[int]], committed: Database
) -> None:
    running, wakes = listener
    [old_pid] = await _backend_pids(committed)
    async with committed.transaction() as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})

    async def reconnected() -> bool:
        pids = await _backend_pids(committed)
        return running.listening and len(pids) == 1 and pids != [old_pid]

    await eventually(reconnected, what="a new LISTEN connection")
    woken_before = len(wakes)
    assert woken_before >= 2  # the reconnection woke the worker too
    await enqueue_committed(committed, ["ada@example.com"])

    async def woken() -> bool:
        return len(wakes) > woken_before

    await eventually(woken, what="the NOTIFY on the new connection")


async def test_stop_closes_the_connection(
    listener: tuple[OutboxListener, list[int]], committed: Database
) -> None:
    running, _ = listener
    running.stop()

    async def closed() -> bool:
        return not running.listening and await _backend_pids(committed) == []

    await eventually(closed, what="the LISTEN connection to close")
