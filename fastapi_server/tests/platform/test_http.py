"""The HTTP side of the database (``resources/http.py``): every route has its scope."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from fastapi_server.config import Settings
from fastapi_server.main import ROUTERS, create_app
from fastapi_server.resources.http import DatabaseRoute, DBs


def _label(route: BaseRoute) -> str:
    methods = sorted(getattr(route, "methods", None) or ())
    return f"{' '.join(methods)} {getattr(route, 'path', route)}"


def test_every_route_the_api_serves_is_a_database_route(settings: Settings) -> None:
    app = create_app(settings)
    on_the_app = [route for route in app.router.routes if isinstance(route, APIRoute)]
    routes = [route for router in ROUTERS for route in router.routes] + on_the_app
    # A router built with plain fastapi.APIRouter (or one nested in a router) shows here.
    assert [_label(route) for route in routes if not isinstance(route, DatabaseRoute)] == []
    # And nothing is served beside ROUTERS: every documented operation is one of theirs.
    documented = {
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    declared = {
        (route.path, method)
        for route in routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    assert documented == declared


def _a_coroutine(call: Callable[..., Any]) -> bool:
    """Is ``call`` awaited by FastAPI: a coroutine function, or an instance (a security
    scheme) whose ``__call__`` is one? A class is called, in a worker thread."""
    if inspect.isclass(call):
        return False
    method = type(call).__call__  # an instance's own method, which callable() does not tell
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(method)


def _synchronous(dependant: Dependant) -> list[str]:
    """The callables under ``dependant`` that FastAPI would call in a worker thread."""
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and not _a_coroutine(call):
            found.append(getattr(call, "__qualname__", type(call).__qualname__))
        found += _synchronous(sub)
    return found


def test_no_endpoint_or_dependency_costs_a_worker_thread() -> None:
    """FastAPI calls a ``def`` endpoint or dependency, a class included, in a worker
    thread: a hop per request that nothing in this API needs (hashing has its own pool)."""
    found = [
        f"{_label(route)}: {name}"
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for name in [
            *([] if _a_coroutine(route.endpoint) else [route.endpoint.__name__]),
            *_synchronous(route.dependant),
        ]
    ]
    assert found == []


async def test_a_route_without_the_database_route_class_fails_clearly(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    plain = APIRouter()

    @plain.get("/_probe/plain")
    async def plain_route(dbs: DBs) -> dict[str, int]:
        return {"flags": len(await dbs.feature_flags.read_all())}

    app.include_router(plain)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/_probe/plain")
    assert response.status_code == 500
    assert response.json()["detail"]["code"] == "INTERNAL_ERROR"
    assert "route_class=DatabaseRoute" in caplog.text
