"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

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


@router.get("/_status", openapi_extra=NO_DATABASE)
async def status() -> dict[str, str]:
    """Liveness: the process is up and serving. Touches nothing else."""
    return {"status": "running"}


@router.get(
    "/_ready",
    responses={
        503: error_doc(
            "DRAINING: the instance is shutting down; "
            "DATABASE_UNAVAILABLE: the database is unreachable"
        )
    },
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: not draining (SIGTERM received), and the database answers a query
    within two seconds."""
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:
        return JSONResponse(
            status_code=503,
            content={
                "status": "draining",
                "detail": {"code": "DRAINING", "message": "This instance is shutting down."},
            },
        )
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.reads() as scope:
            await scope.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason is logged
        logger.warning("readiness check failed: %s", exc.__class__.__name__)
        return JSONResponse(
            status_code=503,
            content={
                "status": "unavailable",
                "detail": {
                    "code": "DATABASE_UNAVAILABLE",
                    "message": "The database is unreachable.",
                },
            },
        )
    return JSONResponse({"status": "ready", "database": "ok"})
