"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fastapi_server.lib.errors import error_doc
from fastapi_server.resources.database.postgres import Database
from fastapi_server.resources.drain import Drain
from fastapi_server.resources.http import APIRouter
from fastapi_server.resources.openapi import NO_DATABASE

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


class Listener(Protocol):
    """A background LISTEN connection, as the apps' lifespans leave it on ``app.state``."""

    @property
    def listening(self) -> bool: ...


class Loaded(Protocol):
    @property
    def loaded(self) -> bool: ...


class FlagListener(Listener, Protocol):
    @property
    def cache(self) -> Loaded: ...


def listener_state(listener: Listener | None) -> str:
    """``listening``, ``reconnecting`` (polling meanwhile), or ``off`` (not run here)."""
    if listener is None:
        return "off"
    return "listening" if listener.listening else "reconnecting"


def background_components(state: Any) -> dict[str, str]:
    """The flag cache and both listeners of this process, as ``/_ready`` reports them."""
    flags: FlagListener | None = getattr(state, "feature_flags_listener", None)
    worker: Listener | None = getattr(state, "notifications_worker", None)
    cache = "off" if flags is None else "loaded" if flags.cache.loaded else "not_loaded"
    return {
        "flag_cache": cache,
        "flag_listener": listener_state(flags),
        "outbox_listener": listener_state(worker),
    }


async def _database_answers(database: Database) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.reads() as scope:
            await scope.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason is logged
        logger.warning("readiness check failed: %s", exc.__class__.__name__)
        return False
    return True


def _unavailable(code: str, message: str, components: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={
            "status": "unavailable",
            **components,
            "detail": {"code": code, "message": message},
        },
    )


@router.get("/_status", openapi_extra=NO_DATABASE)
async def status() -> dict[str, str]:
    """Liveness: the process is up and serving. Touches nothing else."""
    return {"status": "running"}


@router.get(
    "/_ready",
    responses={
        503: error_doc(
            "DRAINING: the instance is shutting down; "
            "DATABASE_UNAVAILABLE: the database is unreachable; "
            "FLAGS_NOT_LOADED: the feature flags have not loaded yet"
        )
    },
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: not draining (SIGTERM received), the database answers a query within two
    seconds and the feature flags have loaded. The body reports each component:
    ``database`` (``ok``/``unavailable``), ``flag_cache`` (``loaded``/``not_loaded``),
    ``flag_listener`` and ``outbox_listener`` (``listening``, ``reconnecting`` while their
    polling stands in, or ``off``). A reconnecting listener does not make the process
    unready: polling keeps it correct."""
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:
        return JSONResponse(
            status_code=503,
            content={
                "status": "draining",
                "detail": {"code": "DRAINING", "message": "This instance is shutting down."},
            },
        )
    database_ok = await _database_answers(request.app.state.database)
    components = {
        "database": "ok" if database_ok else "unavailable",
        **background_components(request.app.state),
    }
    if not database_ok:
        return _unavailable("DATABASE_UNAVAILABLE", "The database is unreachable.", components)
    if components["flag_cache"] == "not_loaded":
        return _unavailable(
            "FLAGS_NOT_LOADED", "The feature flags have not loaded yet.", components
        )
    return JSONResponse({"status": "ready", **components})
