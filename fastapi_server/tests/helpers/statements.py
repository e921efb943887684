"""Which SQL statements an engine's connections run, whichever way they are sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextlib.asynccontextmanager
async def recorded_statements(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Collect every statement run on ``engine``'s pooled connections while inside.

    Statements run through SQLAlchemy are seen by its cursor event; anything sent to the
    driver directly, by asyncpg's query logger, attached to each connection while it is
    checked out. The list is complete after the block.
    """
    statements: list[str] = []
    sync_engine = engine.sync_engine

    def on_cursor(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def on_driver_query(record: Any) -> None:
        statements.append(record.query)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        record.driver_connection.add_query_logger(on_driver_query)

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.driver_connection is not None:
            record.driver_connection.remove_query_logger(on_driver_query)

    event.listen(sync_engine, "before_cursor_execute", on_cursor)
    event.listen(sync_engine.pool, "checkout", on_checkout)
    event.listen(sync_engine.pool, "checkin", on_checkin)
    try:
        yield statements
        await asyncio.sleep(0)  # asyncpg calls its query loggers on the next loop turn
    finally:
        event.remove(sync_engine, "before_cursor_execute", on_cursor)
        event.remove(sync_engine.pool, "checkout", on_checkout)
        event.remove(sync_engine.pool, "checkin", on_checkin)
