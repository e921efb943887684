"""The app factory: settings, logging, the engine's lifespan, every app's router."""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_server.apps.feature_flags.api.api import router as feature_flags_router
from fastapi_server.apps.feature_flags.lifespan import lifespan as feature_flags_lifespan
from fastapi_server.apps.notifications.api.api import router as notifications_router
from fastapi_server.apps.notifications.lifespan import lifespan as notifications_lifespan
from fastapi_server.apps.users.api.api import router as users_router
from fastapi_server.apps.users.lifespan import lifespan as users_lifespan
from fastapi_server.config import Settings, get_settings
from fastapi_server.lib.errors import AppError
from fastapi_server.lib.logging import configure_logging, request_id_var
from fastapi_server.resources import health, metrics, tracing
from fastapi_server.resources.database.postgres import Database, DatabaseError, is_refused_value
from fastapi_server.resources.http import DatabaseRoute
from fastapi_server.resources.sentry import init_sentry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

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


class RequestIdMiddleware:
    """Gives each request an id (or keeps a sane ``X-Request-ID``) for logs and the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.to_detail()})


class _ASCIIJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: encodes any input echoed back, even lone surrogates."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, rendered so that no input (odd characters included) breaks it."""
    assert isinstance(exc, RequestValidationError)
    return _ASCIIJSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A value the schemas let through but the database refused is the client's fault
    (400 ``INVALID_INPUT``); any other database error is ours (500)."""
    if not is_refused_value(exc):
        return await _unhandled_error_handler(request, exc)
    logger.warning("database refused a value on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=400,
        content={
            "detail": {"code": "INVALID_INPUT", "message": "A value in the request is not valid."}
        },
    )


async def _unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_var.get()
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={
            "detail": {
                "code": "INTERNAL_ERROR",
                "message": "Something went wrong on our side.",
                "request_id": request_id,
            }
        },
        headers={"x-request-id": request_id or ""},
    )


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
        description="Users, feature flags and notifications, one app per feature.",
        lifespan=lifespan,
        telemetry=tracing.telemetry_config(settings.telemetry, tracer_provider),
    )
    app.state.settings = settings
    app.state.tracer_provider = tracer_provider
    # Routes added on the app itself get the request's database too (routers set theirs).
    app.router.route_class = DatabaseRoute
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(DatabaseError, _database_error_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestIdMiddleware)
    # Routes are matched in order, and in this FastAPI each route passed over costs a few
    # microseconds: the most requested come first (flag evaluation, the flag list, the
    # caller's profile), the health probes after them.
    app.include_router(feature_flags_router)
    app.include_router(users_router)
    app.include_router(health.router)
    app.include_router(notifications_router)
    if settings.metrics_enabled:
        metrics.instrument(app)
    return app
