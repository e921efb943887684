"""Several uvicorn workers: a raw SQL change reaches every one of them within a second."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx

from fastapi_server.apps.feature_flags.database.listener import LISTENER_APPLICATION_NAME
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.tests.helpers.processes import LiveServer
from fastapi_server.tests.helpers.waiting import eventually

LISTENERS = (
    "SELECT pid, query FROM pg_stat_activity "
    "WHERE application_name = $1 AND datname = current_database() ORDER BY pid"
)
# The listener's query when it reloads the flags a notice named.
PARTIAL_RELOAD = "WHERE codename = ANY($1::text[])"


async def _registration(http: httpx.AsyncClient) -> bool:
    response = await http.get("/feature-flags/evaluate")
    assert response.status_code == 200
    # Anonymous callers get only the flags that are on: a missing codename is off.
    value: bool = response.json().get("FF_ENABLE_REGISTRATION", False)
    return value


async def test_both_workers_see_a_raw_sql_update_within_one_second(clean_database: str) -> None:
    # A long refresh interval: the listeners run no liveness query during the test, so
    # pg_stat_activity shows the last thing each did.
    server = LiveServer({"FEATURE_FLAGS_REFRESH_INTERVAL_SECONDS": "60"}, workers=2)
    psql: asyncpg.Connection[Any] = await asyncpg.connect(to_asyncpg_dsn(clean_database))
    # No keep-alive: every request opens a new connection, so both workers answer some.
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=server.url, limits=fresh) as http:

            async def two_listeners() -> bool:
                return len(await psql.fetch(LISTENERS, LISTENER_APPLICATION_NAME)) == 2

            await eventually(two_listeners, within=10.0)
            assert all([await _registration(http) for _ in range(10)])

            await psql.execute(
                "UPDATE feature_flags SET is_active = false "
                "WHERE codename = 'FF_ENABLE_REGISTRATION'"
            )  # autocommit, like psql
            committed = time.monotonic()
            late_answers: list[bool] = []
            while len(late_answers) < 40:
                sent = time.monotonic()
                value = await _registration(http)
                if sent - committed >= 1.0:
                    late_answers.append(value)
            assert late_answers == [False] * 40

            # Both processes reloaded the flag on the notice (each on its own connection).
            listeners = await psql.fetch(LISTENERS, LISTENER_APPLICATION_NAME)
            assert len(listeners) == 2
            assert all(PARTIAL_RELOAD in row["query"] for row in listeners)
    finally:
        await psql.close()
        output = server.stop()
    assert "Traceback" not in output, output
