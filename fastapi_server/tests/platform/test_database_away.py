"""The database going away under a running API: 503 (never 500), and back by itself.

The test stops and restarts a PostgreSQL server of its own (not the suite's shared one)
under a real uvicorn serving requests.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.processes import LiveServer, free_port
from fastapi_server.tests.helpers.users import auth_headers, make_user
from init.bootstrap import bootstrap
from init.local_postgres import LocalPostgres

STATEMENT_TIMEOUT_S = 3.0
RECOVERY_LIMIT_S = 5.0


@dataclass
class Outage:
    postgres: LocalPostgres
    server: LiveServer
    headers: dict[str, str]


async def _make_user(url: str) -> User:
    database = Database.for_tool(url, application_name="test:database-away")
    try:
        async with database.transaction() as session:
            return await make_user(Databases(session), email="away@example.org")
    finally:
        await database.dispose()


@pytest.fixture
def outage() -> Iterator[Outage]:
    """Its own PostgreSQL, migrated and seeded, a user, and the API under uvicorn."""
    base_dir = Path(tempfile.mkdtemp(prefix="fs-pg-away-"))
    postgres = LocalPostgres(base_dir=base_dir, port=free_port(), fast_and_unsafe=True)
    postgres.start()
    server: LiveServer | None = None
    try:
        url = postgres.url("away")
        bootstrap(url)
        user = asyncio.run(_make_user(url))
        server = LiveServer(
            {
                "DATABASE_URL": url,
                "DB_STATEMENT_TIMEOUT_MS": str(int(STATEMENT_TIMEOUT_S * 1000)),
                "LOG_FORMAT": "text",
            }
        )
        yield Outage(postgres, server, auth_headers(user))
    finally:
        if server is not None:
            server.stop()
        postgres.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@dataclass
class Answer:
    path: str
    status: int
    seconds: float
    retry_after: str | None


async def _hammer(
    http: httpx.AsyncClient, headers: dict[str, str], answers: list[Answer], stop: asyncio.Event
) -> None:
    """Ask the database-backed endpoints in turn until ``stop`` is set."""
    paths = ["/users/user", "/feature-flags", "/_ready", "/users/user"]
    while not stop.is_set():
        for path in paths:
            started = time.monotonic()
            response = await http.get(path, headers=headers)
            answers.append(
                Answer(
                    path,
                    response.status_code,
                    time.monotonic() - started,
                    response.headers.get("retry-after"),
                )
            )


async def _until_all_succeed(http: httpx.AsyncClient, headers: dict[str, str]) -> float:
    """Seconds until every endpoint answers 200 again (polling)."""
    started = time.monotonic()
    while time.monotonic() - started < 30:
        statuses = [
            (await http.get(path, headers=headers)).status_code
            for path in ("/users/user", "/feature-flags", "/_ready")
        ]
        if statuses == [200, 200, 200]:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError("the API did not recover within 30 s")


async def _restart_under_load(outage: Outage) -> tuple[list[Answer], int, float, list[int]]:
    """Requests on four connections while PostgreSQL stops and starts again."""
    answers: list[Answer] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=outage.server.url, timeout=30) as http:
        assert (await http.get("/users/user", headers=outage.headers)).status_code == 200
        load = [asyncio.create_task(_hammer(http, outage.headers, answers, stop)) for _ in range(4)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(outage.postgres.stop)
        await asyncio.sleep(1.0)  # the outage, under load
        during = len(answers)
        await asyncio.to_thread(outage.postgres.start)
        recovery = await _until_all_succeed(http, outage.headers)
        stop.set()
        await asyncio.gather(*load)
        after = [
            (await http.get(path, headers=outage.headers)).status_code
            for path in ("/users/user", "/feature-flags")
        ]
    return answers, during, recovery, after


async def test_database_restart_answers_503_then_recovers_without_restarting_the_api(
    outage: Outage,
) -> None:
    try:
        answers, during, recovery, after = await _restart_under_load(outage)
    except BaseException as exc:
        exc.add_note(f"server output:\n{outage.server.stop()}")
        raise
    output = outage.server.stop()

    assert {answer.status for answer in answers} <= {200, 503}, output
    unavailable = [answer for answer in answers[:during] if answer.status == 503]
    assert unavailable, "the outage was not seen"
    assert any(answer.path == "/_ready" for answer in unavailable)
    assert all(answer.retry_after and int(answer.retry_after) >= 1 for answer in unavailable)
    assert max(answer.seconds for answer in answers) < STATEMENT_TIMEOUT_S
    assert recovery < RECOVERY_LIMIT_S
    assert after == [200, 200]
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if "database unavailable on GET" in line]
    assert warnings
    assert all("request_id=" in line for line in warnings)
