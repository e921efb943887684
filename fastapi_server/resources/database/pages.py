"""The SQL side of ``lib.pagination``: one page of a list and the list's total, as ORM
objects (``fetch_page``) or, for hot lists, as plain rows in one statement
(``page_sql`` and ``read_page``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.postgres import Reader

RowT = TypeVar("RowT")


async def fetch_page(
    session: AsyncSession,
    query: Select[RowT],
    request: PageRequest[Any],
    keys: Sequence[InstrumentedAttribute[Any]],
) -> tuple[Sequence[RowT], int]:
    """The page of ``query`` that ``request`` names, ordered by ``keys`` (the last one
    unique, e.g. the id, so the order is total) in the request's direction, and the number
    of rows of the whole query."""
    counted = query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    total = int((await session.execute(counted)).scalar_one())
    if total <= request.offset:
        return [], total
    order = [key.desc() if request.descending else key.asc() for key in keys]
    rows = await session.scalars(
        query.order_by(*order).offset(request.offset).limit(request.page_size)
    )
    return rows.all(), total


def page_sql(
    table: str, columns: Sequence[str], where: str, key: str, *, descending: bool, params: int
) -> str:
    """One statement reading a page of ``table`` as plain rows and the whole list's count.

    ``where`` (fixed SQL of the caller's, using ``$1`` to ``$<params>``) selects the list;
    the rows are ordered by ``key`` then ``id`` (a total order), and LIMIT and OFFSET are
    the next two parameters. The answer always has a row: its ``total`` column is the
    count, and a page past the end is one row whose other columns are NULL
    (``read_page`` drops it). Both halves can use an index on ``(<where's column>, key,
    id)``: an index-only count, and an ordered scan that stops after the page.
    """
    direction = "DESC" if descending else "ASC"
    return (
        f"SELECT listed.total, page.* FROM (SELECT count(*) AS total FROM {table} "  # noqa: S608 -- fixed names
        f"WHERE {where}) AS listed LEFT JOIN LATERAL (SELECT {', '.join(columns)} FROM {table} "
        f"WHERE {where} ORDER BY {key} {direction}, id {direction} "
        f"LIMIT ${params + 1} OFFSET ${params + 2}) AS page ON true"
    )


async def read_page(
    reader: Reader, sql: str, args: Sequence[Any], request: PageRequest[Any]
) -> tuple[list[dict[str, Any]], int]:
    """The rows of ``page_sql``'s statement as dicts (without ``total``), and the count."""
    rows = await reader.fetch(sql, *args, request.page_size, request.offset)
    total = int(rows[0]["total"])
    page = [{k: v for k, v in row.items() if k != "total"} for row in rows if row["id"] is not None]
    return page, total
