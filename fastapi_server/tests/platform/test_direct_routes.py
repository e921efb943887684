"""``DirectRoute``: endpoints taking only the Request are called directly, and only they.

``solved`` (conftest.py) lists the requests that went through FastAPI's own handler.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import fastapi
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider

from fastapi_server.lib import routing
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

    @router.get("/lies")
    async def lies(request: Request) -> Response:
        return cast(Response, {"not": "a response"})


def _app_with_routes(prefix: str = "", **options: Any) -> FastAPI:
    app = FastAPI(**options)
    router = APIRouter(prefix=prefix, route_class=DirectRoute)
    _routes(router)
    app.include_router(router)
    return app


@contextlib.asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app_with_routes("/x")) as client:
        yield client


async def test_this_fastapi_is_the_one_checked() -> None:
    # On an upgrade, check DirectRoute against the new FastAPI (lib/routing.py) first.
    assert fastapi.__version__ == routing.CHECKED_FASTAPI_VERSION


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


async def test_an_endpoint_returning_something_else_than_its_annotation_fails_clearly(
    http: httpx.AsyncClient,
) -> None:
    with pytest.raises(TypeError, match=r"lies is annotated to return a Response but returned"):
        await http.get("/x/lies")


async def test_routes_on_the_app_itself_are_called_directly_too(solved: list[str]) -> None:
    app = FastAPI()
    app.router.route_class = DirectRoute  # as main.py does, with DatabaseRoute
    _routes(app.router)
    async with _client(app) as http:
        assert (await http.get("/direct")).text == "direct /direct"
    assert solved == []


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
    return _app_with_routes(dependencies=[Depends(refuse)])


def _app_dependency_on_a_route_of_the_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(refuse)])
    app.router.route_class = DirectRoute
    _routes(app.router)
    return app


@pytest.mark.parametrize(
    "declare",
    [
        _route_dependency,
        _router_dependency,
        _include_dependency,
        _outer_router_dependency,
        _app_dependency,
        _app_dependency_on_a_route_of_the_app,
    ],
)
async def test_a_dependency_declared_anywhere_still_runs(
    declare: Callable[[], FastAPI],
) -> None:
    async with _client(declare()) as http:
        response = await http.get("/direct")
    assert response.status_code == 403
    assert response.json() == {"detail": "refused by a dependency"}


async def test_a_router_included_twice_keeps_each_inclusions_dependencies(
    solved: list[str],
) -> None:
    router = APIRouter(route_class=DirectRoute)
    _routes(router)
    app = FastAPI()
    app.include_router(router, prefix="/guarded", dependencies=[Depends(refuse)])
    app.include_router(router, prefix="/open")
    async with _client(app) as http:
        assert (await http.get("/guarded/direct")).status_code == 403
        assert solved == ["/guarded/direct"]
        assert (await http.get("/open/direct")).text == "direct /open/direct"
        assert solved == ["/guarded/direct"]


async def test_with_another_fastapi_nothing_is_called_directly(
    monkeypatch: pytest.MonkeyPatch, solved: list[str]
) -> None:
    monkeypatch.setattr(routing, "CHECKED_FASTAPI_VERSION", "0.0.0")
    async with _client(_app_with_routes()) as http:
        assert (await http.get("/direct")).text == "direct /direct"
    assert solved == ["/direct"]


class _Tracing(TracerProvider):
    """A configured tracer provider (FastAPI skips its telemetry for the no-op one)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return NoOpTracer()


TRACING_ONLY = {"tracer_provider": _Tracing(), "metrics": False, "logs": False}


async def test_with_telemetry_active_the_request_goes_through_fastapi(solved: list[str]) -> None:
    async with _client(_app_with_routes(telemetry=TRACING_ONLY)) as http:
        assert (await http.get("/direct")).text == "direct /direct"
    assert solved == ["/direct"]


async def test_a_request_telemetry_excludes_is_called_directly(solved: list[str]) -> None:
    telemetry = TRACING_ONLY | {"exclude": lambda scope: True}
    async with _client(_app_with_routes(telemetry=telemetry)) as http:
        assert (await http.get("/direct")).text == "direct /direct"
    assert solved == []
