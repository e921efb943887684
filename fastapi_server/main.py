"""The app factory: settings, logging, the engine's lifespan, every app's router."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_server import app_metrics
from fastapi_server.apps.feature_flags.api.api import router as feature_flags_router
from fastapi_server.apps.feature_flags.api.ofrep import router as ofrep_router
from fastapi_server.apps.feature_flags.lifespan import lifespan as feature_flags_lifespan
from fastapi_server.apps.notifications.api.api import router as notifications_router
from fastapi_server.apps.notifications.lifespan import lifespan as notifications_lifespan
from fastapi_server.apps.projects.api.api import router as projects_router
from fastapi_server.apps.todos.api.api import router as todos_router
from fastapi_server.apps.users.api.api import router as users_router
from fastapi_server.apps.users.lifespan import lifespan as users_lifespan
from fastapi_server.config import Settings, get_settings
from fastapi_server.lib.logging import configure_logging, request_id_var
from fastapi_server.resources import errors, health, metrics, openapi, tracing
from fastapi_server.resources.database.postgres import Database
from fastapi_server.resources.drain import Drain
from fastapi_server.resources.http import DatabaseRoute
from fastapi_server.resources.sentry import init_sentry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

# Every router of the API, in the order they are matched: in this FastAPI each route
# passed over costs a few microseconds, so the most requested come first (flag
# evaluation, the flag list, the caller's profile), the health probes after them. Tests
# check that each route here is a DatabaseRoute and that no other route is served.
ROUTERS = (
    feature_flags_router,
    ofrep_router,
    users_router,
    health.router,
    notifications_router,
    projects_router,
    todos_router,
)

# Per-app background services (cache listeners, delivery workers), entered after the
# engine is up and left before it is disposed. Each takes the app and yields.
AppLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
APP_LIFESPANS: list[AppLifespan] = [
    users_lifespan,  # first: refuses to start with placeholder secrets in production
    tracing.lifespan,
    feature_flags_lifespan,
    notifications_lifespan,
    metrics.lifespan,  # last: samples what the others started
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One engine for the process: made at start-up, disposed at shutdown."""
    settings: Settings = app.state.settings
    database = Database.from_settings(settings, application_name="api")
    app.state.database = database
    drain = app.state.drain = Drain(settings.shutdown_drain_seconds)
    drain.install()
    try:
        async with AsyncExitStack() as stack:
            for app_lifespan in APP_LIFESPANS:
                await stack.enter_async_context(app_lifespan(app))
            _freeze_startup_objects()
            try:
                yield
            finally:
                gc.unfreeze()  # collectable again once this app is gone (tests make many)
    finally:
        drain.uninstall()
        await database.dispose()


def _freeze_startup_objects() -> None:
    """Hide what start-up made (modules, routes, schemas, mappers: it lives as long as the
    process) from the garbage collector. A full collection walks every tracked object;
    with these it paused a worker for 70-100 ms, the p99 of every endpoint under load,
    and without them for under 10 ms. No collection first: it would cost every start
    (and every test's app) about 0.1 s, and start-up leaves little garbage to keep."""
    gc.freeze()


def _request_ids() -> Iterator[str]:
    """32 hex characters, like ``uuid4().hex``, without a system call per request: a random
    prefix per process and a counter."""
    prefix = secrets.token_hex(8)
    for number in itertools.count():
        yield f"{prefix}{number:016x}"


_new_request_ids = _request_ids()


def _fresh_request_ids_after_fork() -> None:
    global _new_request_ids
    _new_request_ids = _request_ids()


os.register_at_fork(after_in_child=_fresh_request_ids_after_fork)


# Sent with every answer: no MIME sniffing of a JSON body into something else, and no
# Referer header carrying a URL (a reset link's token) to another site.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


ResponseObserver = Callable[[Scope, int, float], None]
"""Told each HTTP request's scope, status and duration in seconds (``metrics.record``)."""


class RequestMiddleware:
    """The one pass of the platform's own that every HTTP request takes: gives it an id
    (or keeps a sane ``X-Request-ID``) for logs and the response, adds
    ``SECURITY_HEADERS`` to every response (errors included) and, given ``observe``
    (metrics on), reports its status and duration. One ASGI layer for all three: each
    layer costs every request a few microseconds."""

    def __init__(self, app: ASGIApp, observe: ResponseObserver | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        request_id = request_id or next(_new_request_ids)
        # Not reset afterwards: Starlette's outermost error middleware renders a crash
        # after this middleware has returned, and its log line must still carry the id.
        request_id_var.set(request_id)
        added = ((b"x-request-id", request_id.encode("latin-1")), *SECURITY_HEADERS)
        status = 500  # what the client gets when the app fails before answering

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].extend(added)
            await send(message)

        observe = self.observe
        if observe is None:
            await self.app(scope, receive, send_with_headers)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            observe(scope, status, time.perf_counter() - start)


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """Build the API; tests pass their own ``settings`` (and ``tracer_provider``: else
    the OTLP exporter's when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, resources/tracing.py)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    init_sentry(settings.env)
    tracer_provider = tracer_provider or tracing.provider_from_environment()
    app = FastAPI(
        title="FastAPI platform",
        description="Users, feature flags, notifications, projects and todos, one app per feature.",
        lifespan=lifespan,
        # DOCS_ENABLED=false: no /docs, /redoc nor /openapi.json (404).
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        telemetry=tracing.telemetry_config(settings.telemetry, tracer_provider),
    )
    app.state.settings = settings
    app.state.tracer_provider = tracer_provider
    # Routes added on the app itself get the request's database too (routers set theirs).
    app.router.route_class = DatabaseRoute
    errors.install(app)  # one error shape for every answer
    openapi.install(app)  # before the routers: it names their operations
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        RequestMiddleware, observe=metrics.record if settings.metrics_enabled else None
    )
    for router in ROUTERS:
        app.include_router(router)
    if settings.metrics_enabled:
        metrics.instrument(app, app_metrics.database_families)
    return app
