"""Liveness and readiness, with the database up and down."""

from __future__ import annotations

import gc

import httpx

from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.tests.helpers.processes import free_port


async def test_status_says_running(client: httpx.AsyncClient) -> None:
    response = await client.get("/_status")
    assert response.status_code == 200
    assert response.json() == {"status": "running"}


async def test_ready_when_database_answers_and_reports_each_component(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/_ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "flag_cache": "loaded",
        "flag_listener": "listening",
        "outbox_listener": "listening",
    }


async def test_ready_is_503_until_the_flags_have_loaded(scratch_database_url: str) -> None:
    # An empty database (not migrated yet) answers SELECT 1 but has no flags to load.
    app = create_app(Settings(database_url=scratch_database_url, env="test"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            ready = await http.get("/_ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["detail"]["code"] == "FLAGS_NOT_LOADED"
    assert (body["database"], body["flag_cache"]) == ("ok", "not_loaded")
    assert body["flag_listener"] == "reconnecting"  # it retries until the flags load


async def test_ready_is_503_with_clear_body_when_database_is_down() -> None:
    nobody_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(Settings(database_url=nobody_listens, env="test", db_pool_pre_ping=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            ready = await http.get("/_ready")
            alive = await http.get("/_status")
    assert ready.status_code == 503
    assert ready.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
    assert ready.json()["database"] == "unavailable"
    assert ready.json()["flag_cache"] == "not_loaded"
    assert alive.status_code == 200


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    given = await client.get("/_status", headers={"X-Request-ID": "abc-123"})
    made = await client.get("/_status")
    again = await client.get("/_status")
    assert given.headers["x-request-id"] == "abc-123"
    for response in (made, again):
        assert len(response.headers["x-request-id"]) == 32
        int(response.headers["x-request-id"], 16)  # hex, like a uuid4().hex
    assert made.headers["x-request-id"] != again.headers["x-request-id"]


async def test_start_up_objects_are_hidden_from_the_collector_while_the_app_runs(
    settings: Settings,
) -> None:
    app = create_app(settings)
    before = gc.get_freeze_count()
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > before  # full collections skip what start-up made
    assert gc.get_freeze_count() == 0  # and it is collectable again once the app is gone
