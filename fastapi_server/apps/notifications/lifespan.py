"""The in-process delivery worker, one per API process (``NOTIFICATIONS_WORKER_IN_PROCESS``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastapi_server.apps.notifications.settings import (
    NotificationsSettings,
    get_notifications_settings,
)
from fastapi_server.apps.notifications.transports import check_transport
from fastapi_server.apps.notifications.worker import DeliveryWorker, worker_name
from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.resources.database.postgres import Database

logger = logging.getLogger(__name__)

# Past the send in hand (bounded by the SMTP timeout), how long shutdown waits.
STOP_GRACE_SECONDS = 5.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run a delivery worker beside the API unless turned off.

    ``app.state.notifications_settings``, when set before start-up, replaces the
    environment's settings (tests point the worker at their SMTP server this way).
    Refuses to start a worker with the console transport in production
    (``check_transport``).
    """
    settings: NotificationsSettings = (
        getattr(app.state, "notifications_settings", None) or get_notifications_settings()
    )
    platform: Settings = app.state.settings
    if not settings.worker_in_process or not platform.listen_url:
        yield
        return
    check_transport(platform.env, settings)
    database: Database = app.state.database
    worker = DeliveryWorker(
        database, to_asyncpg_dsn(platform.listen_url), settings, name=worker_name("api")
    )
    app.state.notifications_worker = worker
    task = asyncio.create_task(worker.run(), name="notifications-worker")
    try:
        yield
    finally:
        worker.stop()
        try:
            async with asyncio.timeout(settings.smtp_timeout_seconds + STOP_GRACE_SECONDS):
                await asyncio.shield(task)
        except TimeoutError:
            logger.warning("notifications worker did not stop in time; cancelling it")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
