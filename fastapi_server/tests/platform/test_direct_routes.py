"""``DirectRoute``: endpoints taking only the Request are called directly, and only they.

``solved`` (conftest.py) lists the requests that went through FastAPI's own handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider

from fastapi_server.lib.routing import DirectRoute


async def refuse() -> None:
    raise HTTPException(status_code=403, detail="refused by a dependency")


def _routes(router: APIRouter) -> None:
    @router.get("/direct")
    async def direct(request: Request) -> Response:
        return Response(f"direct {request.url.path}", media_type="text/plain")

    @router.get("/with-query")
    async def with_query(request: Request, n: int = 1) -> Response:
        return Response(f"n={n}", media_type="text/plain")

    @router.get("/returns-a-dict")
    async def returns_a_dict(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    @router.get("/sync")
    def sync(request: Request) -> Response:
        return Response("sync", media_type="text/plain")


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    router = APIRouter(prefix="/x", route_class=DirectRoute)
    _routes(router)
    app.include_router(router)
    async for client in _client(app):
        yield client


async def test_an_endpoint_taking_only_the_request_is_called_directly(
    http: httpx.AsyncClient, solved: list[str]
) -> None:
    response = await http.get("/x/direct")
    assert response.status_code == 200
    assert response.text == "direct /x/direct"
    assert response.headers["content-type"].startswith("text/plain")
    assert solved == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/x/with-query?n=3", "n=3"),
        ("/x/returns-a-dict", '{"path":"/x/returns-a-dict"}'),
        ("/x/sync", "sync"),
    ],
)
async def test_every_other_endpoint_goes_through_fastapi(
    http: httpx.AsyncClient, solved: list[str], path: str, body: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.text == body
    assert solved == [path.partition("?")[0]]


def _route_dependency() -> FastAPI:
    router = APIRouter(route_class=DirectRoute)

    @router.get("/direct", dependencies=[Depends(refuse)])
    async def direct(request: Request) -> Response:
        return Response("served")

    app = FastAPI()
    app.include_router(router)
    return app


def _router_dependency() -> FastAPI:
    router = APIRouter(route_class=DirectRoute, dependencies=[Depends(refuse)])
    _routes(router)
    app = FastAPI()
    app.include_router(router)
    return app


def _include_dependency() -> FastAPI:
    router = APIRouter(route_class=DirectRoute)
    _routes(router)
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(refuse)])
    return app


def _outer_router_dependency() -> FastAPI:
    inner = APIRouter(route_class=DirectRoute)
    _routes(inner)
    outer = APIRouter(dependencies=[Depends(refuse)])
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    return app


def _app_dependency() -> FastAPI:
    router = APIRouter(route_class=DirectRoute)
    _routes(router)
    app = FastAPI(dependencies=[Depends(refuse)])
    app.include_router(router)
    return app


@pytest.mark.parametrize(
    "declare",
    [
        _route_dependency,
        _router_dependency,
        _include_dependency,
        _outer_router_dependency,
        _app_dependency,
    ],
)
async def test_a_dependency_declared_anywhere_still_runs(
    declare: Callable[[], FastAPI],
) -> None:
    async for http in _client(declare()):
        response = await http.get("/direct")
        assert response.status_code == 403
        assert response.json() == {"detail": "refused by a dependency"}


class _Tracing(TracerProvider):
    """A configured tracer provider (FastAPI skips its telemetry for the no-op one)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return NoOpTracer()


async def test_with_telemetry_active_the_request_goes_through_fastapi(solved: list[str]) -> None:
    app = FastAPI(telemetry={"tracer_provider": _Tracing(), "metrics": False, "logs": False})
    router = APIRouter(route_class=DirectRoute)
    _routes(router)
    app.include_router(router)
    async for http in _client(app):
        response = await http.get("/direct")
        assert response.text == "direct /direct"
        assert solved == ["/direct"]
