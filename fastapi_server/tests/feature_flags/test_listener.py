"""The cache follows every change: NOTIFY, reconnection, database down, never loaded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.cache import bucket, flag_cache
from fastapi_server.apps.feature_flags.database.listener import (
    LISTENER_APPLICATION_NAME,
    FlagListener,
)
from fastapi_server.apps.feature_flags.settings import get_feature_flags_settings
from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.feature_flags.helpers import TcpProxy
from fastapi_server.tests.helpers.processes import free_port
from fastapi_server.tests.helpers.users import STRONG_PASSWORD, auth_headers, make_user
from fastapi_server.tests.helpers.waiting import eventually

REGISTRATION = "FF_ENABLE_REGISTRATION"


async def _sql(url: str, statement: str, *args: Any) -> Any:
    """Run one statement on a connection of its own (autocommit), like psql."""
    connection = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


async def _listener_pids(url: str) -> list[int]:
    rows = await _sql(
        url,
        "SELECT pid FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()",
        LISTENER_APPLICATION_NAME,
    )
    return sorted(row["pid"] for row in rows)


async def _on(codename: str, user: Any = None) -> bool:
    return await core.is_enabled(codename, user)


async def _off(codename: str) -> bool:
    return not await _on(codename)


async def _absent(codename: str) -> bool:
    return codename not in flag_cache.rules


async def _present(codename: str) -> bool:
    return codename in flag_cache.rules


def _not_listening(listener: FlagListener) -> Any:
    async def check() -> bool:
        return not listener.listening

    return check


def _listening(listener: FlagListener) -> Any:
    async def check() -> bool:
        return listener.listening

    return check


@pytest.fixture
def fast_refresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Poll every 0.2 s while the LISTEN connection is down (for apps started after this)."""
    monkeypatch.setenv("FEATURE_FLAGS_REFRESH_INTERVAL_SECONDS", "0.2")
    get_feature_flags_settings.cache_clear()
    yield
    get_feature_flags_settings.cache_clear()


async def test_raw_sql_changes_reach_the_running_api_within_a_second(
    committed_client: httpx.AsyncClient, clean_database: str
) -> None:
    assert await _on(REGISTRATION)
    before = await committed_client.get("/feature-flags/evaluate")  # rendered once, kept
    assert before.json() == {REGISTRATION: True}
    await _sql(
        clean_database,
        f"UPDATE feature_flags SET is_active = false WHERE codename = '{REGISTRATION}'",
    )
    await eventually(lambda: _off(REGISTRATION), within=1.0)

    await _sql(
        clean_database, "INSERT INTO feature_flags (codename, is_active) VALUES ('FF_NEW', true)"
    )
    await eventually(lambda: _on("FF_NEW"), within=1.0)
    response = await committed_client.get("/feature-flags/evaluate")
    assert response.json() == {"FF_NEW": True}  # anonymous: off flags are left out

    await _sql(clean_database, "DELETE FROM feature_flags WHERE codename = 'FF_NEW'")
    await eventually(lambda: _absent("FF_NEW"), within=1.0)
    assert await core.is_enabled("FF_NEW", default_if_missing=True) is True  # its default now
    after = await committed_client.get("/feature-flags/evaluate")
    assert after.json() == {}


async def test_evaluate_answers_for_the_caller(
    committed_client: httpx.AsyncClient, engine: AsyncEngine, clean_database: str
) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        user = await make_user(Databases(session))
    await _sql(
        clean_database,
        "INSERT INTO feature_flags (codename, is_active, user_ids, rollout_percentage) VALUES "
        "('FF_ALL', true, '{}', 100), ('FF_OFF', false, $1, 100), "
        "('FF_LISTED', true, $1, 0), ('FF_HALF', true, '{}', 50)",
        [user.id],
    )
    await eventually(lambda: _present("FF_HALF"), within=1.0)

    anonymous = await committed_client.get("/feature-flags/evaluate")
    assert anonymous.status_code == 200
    # Anonymous callers get only the flags on for them (100% rollouts), nothing of the rest.
    assert anonymous.json() == {REGISTRATION: True, "FF_ALL": True}
    headers = auth_headers(user)
    mine = await committed_client.get("/feature-flags/evaluate", headers=headers)
    assert mine.json() == {
        REGISTRATION: True,
        "FF_ALL": True,
        "FF_OFF": False,  # is_active is the master switch, even for listed users
        "FF_LISTED": True,
        "FF_HALF": bucket("FF_HALF", user.id) < 50,
    }

    # The caller comes from the token alone (no database work): a token whose user was
    # deleted meanwhile still reads that user's values until it expires (documented).
    await _sql(clean_database, "DELETE FROM users WHERE id = $1", user.id)
    after_deletion = await committed_client.get("/feature-flags/evaluate", headers=headers)
    assert after_deletion.status_code == 200
    assert after_deletion.json() == mine.json()


async def test_reconnects_when_the_listening_connection_is_killed(
    app: Any, clean_database: str
) -> None:
    [old_pid] = await _listener_pids(clean_database)
    await _sql(clean_database, "SELECT pg_terminate_backend($1)", old_pid)
    # Changed while the listener is gone: the reload after reconnecting catches it.
    await _sql(
        clean_database,
        f"UPDATE feature_flags SET is_active = false WHERE codename = '{REGISTRATION}'",
    )
    await eventually(lambda: _off(REGISTRATION), within=2.0)

    async def reconnected() -> bool:
        pids = await _listener_pids(clean_database)
        return len(pids) == 1 and pids[0] != old_pid

    await eventually(reconnected, within=2.0)
    # And the new connection receives notices again.
    await _sql(
        clean_database,
        f"UPDATE feature_flags SET is_active = true WHERE codename = '{REGISTRATION}'",
    )
    await eventually(lambda: _on(REGISTRATION), within=1.0)


async def test_a_bare_notify_reloads_every_flag(app: Any, clean_database: str) -> None:
    connection = await asyncpg.connect(to_asyncpg_dsn(clean_database))
    try:
        async with connection.transaction():  # like a restore with triggers disabled
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute(
                "INSERT INTO feature_flags (codename, is_active, created_by, updated_by) "
                "VALUES ('FF_SILENT', true, 'restore', 'restore')"
            )
        await asyncio.sleep(0.3)
        assert not await _present("FF_SILENT"), "no trigger ran, so no notice was sent"
        await connection.execute("NOTIFY feature_flags_changed")  # the documented remedy
        await eventually(lambda: _on("FF_SILENT"), within=1.0)
    finally:
        await connection.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def test_database_down_serves_the_last_values_then_catches_up(
    fast_refresh: None, clean_database: str
) -> None:
    target = urlsplit(clean_database)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    await _sql(
        clean_database, "INSERT INTO feature_flags (codename, is_active) VALUES ('FF_X', true)"
    )
    settings = Settings(
        database_url=_through(clean_database, proxy.port), env="test", db_pool_pre_ping=False
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            listener: FlagListener = app.state.feature_flags_listener
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                assert (await http.get("/feature-flags/evaluate")).json()["FF_X"] is True

                await proxy.stop()  # the database is unreachable for this app from now on
                await eventually(_not_listening(listener), within=2.0)
                await _sql(
                    clean_database,
                    "UPDATE feature_flags SET is_active = false WHERE codename = 'FF_X'",
                )
                await asyncio.sleep(1.0)  # several failed polls and reconnection attempts
                assert await _on("FF_X")
                assert (await http.get("/feature-flags/evaluate")).json()["FF_X"] is True

                await proxy.start()  # back: the next poll or reconnection catches up
                await eventually(lambda: _off("FF_X"), within=2.0)
                await eventually(_listening(listener), within=2.0)
    finally:
        await proxy.stop()


async def test_never_loaded_fails_closed() -> None:
    nobody_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(Settings(database_url=nobody_listens, env="test", db_pool_pre_ping=False))
    async with app.router.lifespan_context(app):
        assert not flag_cache.loaded
        assert await core.is_enabled(REGISTRATION, default_if_missing=True) is False
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/feature-flags/evaluate")).json() == {}
            registration = await http.post(
                "/register",
                json={
                    "email": f"{uuid.uuid4().hex}@example.org",
                    "password": STRONG_PASSWORD,
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                },
            )
    assert registration.status_code == 404
    assert registration.json()["detail"]["code"] == "FEATURE_DISABLED"
