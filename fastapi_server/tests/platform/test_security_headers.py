"""What every answer tells browsers and caches, the docs switch and the CORS rule."""

from __future__ import annotations

import httpx
import pydantic
import pytest
from fastapi import FastAPI

from fastapi_server.config import Settings
from fastapi_server.main import create_app


async def test_every_answer_forbids_sniffing_and_referrers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/_status"),
        await client.get("/no-such-route"),
        await client.post("/login", data={}),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_the_docs_can_be_switched_off(settings: Settings) -> None:
    app: FastAPI = create_app(settings.model_copy(update={"docs_enabled": False}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404


def test_cors_sends_no_credentials_and_refuses_them_for_any_origin() -> None:
    assert Settings(cors_origins="https://app.example").cors_allow_credentials is False
    with pytest.raises(pydantic.ValidationError, match="CORS_ORIGINS"):
        Settings(cors_origins="*", cors_allow_credentials=True)


async def test_a_cors_answer_does_not_allow_credentials(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": "https://app.example"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        preflight = await http.options(
            "/login",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
            },
        )
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in preflight.headers
