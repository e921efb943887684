"""Alembic environment: async engine, the same settings as the API."""

from __future__ import annotations

import asyncio
import contextlib
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_server.config import get_settings
from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.models import Base
from fastapi_server.resources.database.postgres import connect_args

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url(stack: contextlib.ExitStack) -> str:
    """The URL given by the caller, else DATABASE_URL, else the local embedded server."""
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    if url:
        return url
    from init.database import local_database_url  # only needed from the command line

    return stack.enter_context(local_database_url())


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    # No statement timeout: a migration may rewrite a large table.
    engine = create_async_engine(
        to_sqlalchemy_url(url),
        connect_args=connect_args(get_settings(), "alembic", statement_timeout=False),
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or get_settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    with contextlib.ExitStack() as exit_stack:
        asyncio.run(_run_online(_database_url(exit_stack)))
