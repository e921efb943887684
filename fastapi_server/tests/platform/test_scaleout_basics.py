"""What scale-out relies on, without the topology (``tests/scaleout/`` has that): the
graceful drain of a real uvicorn on SIGTERM, 503 for a database out of reach, and the
settings that put PgBouncer in front.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from pydantic import ValidationError

from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.tests.helpers.processes import LiveServer, free_port

DRAIN_SECONDS = 2.0


@pytest.mark.usefixtures("database_url")
def test_on_sigterm_ready_says_draining_while_requests_are_still_served() -> None:
    server = LiveServer({"SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)})
    try:
        assert httpx.get(f"{server.url}/_ready").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        time.sleep(0.2)
        with httpx.Client(base_url=server.url) as http:
            ready = http.get("/_ready")
            served = http.get("/feature-flags")
        assert ready.status_code == 503
        assert ready.json()["detail"]["code"] == "DRAINING"
        assert served.status_code == 200  # requests are still served meanwhile
        assert server.process.wait(timeout=DRAIN_SECONDS + 15) is not None
        assert time.monotonic() - sent >= DRAIN_SECONDS - 0.1  # stopped only after the drain
    finally:
        server.stop()


async def test_a_request_meeting_no_database_answers_503_to_retry() -> None:
    nobody_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(Settings(database_url=nobody_listens, env="test"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            read = await http.get("/feature-flags")
            login = await http.post(
                "/auth/request-verification-token", json={"email": "a@example.com"}
            )
    assert read.status_code == 503
    assert read.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
    assert read.headers["retry-after"] == "1"
    assert login.status_code == 503


def test_pgbouncer_needs_a_direct_url_for_the_listen_connections() -> None:
    pooled = "postgresql://app@pgbouncer:6432/app"
    with pytest.raises(ValidationError, match="DATABASE_LISTEN_URL"):
        Settings(_env_file=None, database_url=pooled, db_pgbouncer=True)
    direct = "postgresql://app@postgres:5432/app"
    settings = Settings(
        _env_file=None,
        database_url=pooled,
        database_listen_url=direct,
        db_pgbouncer=True,
    )
    assert settings.listen_url == direct
    assert Settings(_env_file=None, database_url=direct).listen_url == direct
