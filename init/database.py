"""Which database the tools use: DATABASE_URL when set, else the local embedded server."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

from fastapi_server.config import get_settings
from init.bootstrap import bootstrap, create_database_if_missing
from init.local_postgres import DEFAULT_DATABASE, LocalPostgres


@contextlib.contextmanager
def local_database_url(server: LocalPostgres | None = None) -> Iterator[str]:
    """The local server's URL, starting it if it is down and stopping it after if we did."""
    server = server or LocalPostgres()
    started = server.start()
    try:
        url = server.url(DEFAULT_DATABASE)
        asyncio.run(create_database_if_missing(url))  # a new cluster has only "postgres"
        yield url
    finally:
        if started:
            server.stop()


@contextlib.contextmanager
def tool_database_url(*, bootstrap_local: bool = True) -> Iterator[str]:
    """For scripts: DATABASE_URL when set, else the local server (see ``local_database_url``).

    The local database is brought up to date first (migrated and seeded, as ``serve``
    does), so a script works on a fresh checkout; a DATABASE_URL server is migrated only
    on purpose (``manage.py bootstrap``, the ``migrate`` service). Also exports
    DATABASE_URL, so the settings the apps read point at the same server.
    """
    configured = get_settings().database_url  # the environment, else .env
    if configured:
        yield configured
        return
    with local_database_url() as url:
        if bootstrap_local:
            bootstrap(url)
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        try:
            yield url
        finally:
            os.environ.pop("DATABASE_URL", None)
            get_settings.cache_clear()
