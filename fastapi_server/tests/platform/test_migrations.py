"""The migrations are the schema: reversible, and in step with the models."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_server.lib.database_url import to_sqlalchemy_url
from fastapi_server.models import Base
from init.bootstrap import alembic_config, migrate


async def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(to_sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


def _diff(url: str) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    async def run() -> list[object]:
        engine = create_async_engine(to_sqlalchemy_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_name <> 'alembic_version' ORDER BY 1"
)


def test_upgrade_downgrade_upgrade_round_trip(scratch_database_url: str) -> None:
    migrate(scratch_database_url)
    tables_at_head = asyncio.run(_query(scratch_database_url, TABLES))

    command.downgrade(alembic_config(scratch_database_url), "base")
    assert asyncio.run(_query(scratch_database_url, TABLES)) == []
    functions = "SELECT proname FROM pg_proc WHERE proname = 'set_updated_on'"
    assert asyncio.run(_query(scratch_database_url, functions)) == []

    migrate(scratch_database_url)
    assert asyncio.run(_query(scratch_database_url, TABLES)) == tables_at_head


def test_models_match_migrations(scratch_database_url: str) -> None:
    migrate(scratch_database_url)
    assert _diff(scratch_database_url) == []


def test_every_table_and_column_is_commented(scratch_database_url: str) -> None:
    migrate(scratch_database_url)
    uncommented = asyncio.run(
        _query(
            scratch_database_url,
            """
            SELECT c.table_name || '.' || c.column_name
            FROM information_schema.columns c
            JOIN pg_class t ON t.relname = c.table_name AND t.relkind = 'r'
            JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
            WHERE c.table_schema = 'public' AND c.table_name <> 'alembic_version'
              AND col_description(t.oid, c.ordinal_position) IS NULL
            UNION ALL
            SELECT t.relname FROM pg_class t
            JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
            WHERE t.relkind = 'r' AND t.relname <> 'alembic_version'
              AND obj_description(t.oid, 'pg_class') IS NULL
            """,
        )
    )
    assert uncommented == []
