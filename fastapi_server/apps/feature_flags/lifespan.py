"""The app's background service: the flag cache listener, one per API process; and the
in-process OpenFeature provider, registered as the SDK's default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastapi_server.apps.feature_flags.cache import flag_cache
from fastapi_server.apps.feature_flags.database.listener import FlagListener
from fastapi_server.apps.feature_flags.openfeature_provider import register as register_provider
from fastapi_server.apps.feature_flags.settings import get_feature_flags_settings
from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_asyncpg_dsn

_running: set[FlagListener] = set()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the flags (unless the database is down) and keep them fresh until shutdown."""
    register_provider()
    settings: Settings = app.state.settings
    if not settings.listen_url:
        yield
        return
    # DATABASE_LISTEN_URL: straight to PostgreSQL, past any pooler (LISTEN needs a session).
    listener = FlagListener(
        to_asyncpg_dsn(settings.listen_url), flag_cache, get_feature_flags_settings()
    )
    app.state.feature_flags_listener = listener
    _running.add(listener)
    try:
        await listener.start()
        yield
    finally:
        await listener.stop()
        _running.discard(listener)
        if not _running:  # the cache is the process's; forget it with its last user
            flag_cache.reset()
