"""Bootstrap a database: create it if missing, migrate to head, seed defaults. Idempotent.

Usage: python -m init.bootstrap   (DATABASE_URL when set, else the local embedded server)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from fastapi_server.apps.feature_flags.core import seed_default_flags
from fastapi_server.config import get_settings
from fastapi_server.lib.database_url import (
    database_name,
    redact,
    to_asyncpg_dsn,
    to_sqlalchemy_url,
    with_database,
)
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database, driver_options

logger = logging.getLogger("init.bootstrap")
REPO_ROOT = Path(__file__).resolve().parent.parent

# Each app's default rows, applied in one transaction; each seeder must keep what an
# operator already changed (insert when missing, never overwrite).
Seeder = Callable[[Databases], Awaitable[None]]
SEEDERS: list[Seeder] = [seed_default_flags]


async def create_database_if_missing(url: str) -> bool:
    """Create the URL's database on its server when it does not exist; True if created."""
    name = database_name(url)
    options = driver_options(get_settings())
    try:  # a managed server may not let us into "postgres": look at the target first
        await (await asyncpg.connect(to_asyncpg_dsn(url), **options)).close()
        return False
    except asyncpg.InvalidCatalogNameError:
        pass
    conn = await asyncpg.connect(with_database(url, "postgres"), **options)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:  # created meanwhile by another bootstrap
            return False
        return True
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the URL's database, ending its sessions first (``manage.py destroy``)."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"), **driver_options(get_settings()))
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


def alembic_config(url: str | None = None) -> Config:
    """The project's Alembic configuration, pointed at ``url`` when given."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    if url:
        config.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """``alembic upgrade`` to ``revision`` (call outside a running event loop)."""
    command.upgrade(alembic_config(url), revision)


async def seed(url: str) -> None:
    """Run every app's seeder in one transaction."""
    database = Database.for_tool(url, "init:seed")
    try:
        async with database.transaction() as session:
            dbs = Databases(session)
            for seeder in SEEDERS:
                await seeder(dbs)
    finally:
        await database.dispose()


def bootstrap(url: str) -> None:
    """Create (if missing), migrate and seed the database at ``url``."""
    to_asyncpg_dsn(url)
    if asyncio.run(create_database_if_missing(url)):
        logger.info("created database %s", database_name(url))
    migrate(url)
    asyncio.run(seed(url))
    logger.info("database %s is migrated and seeded", redact(url))


def main() -> None:
    from init.database import tool_database_url

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tool_database_url(bootstrap_local=False) as url:
        bootstrap(url)


if __name__ == "__main__":
    main()
