"""The SQL side of ``lib.pagination``: one page of a list and the list's total, as ORM
objects (``fetch_page``) or, for hot lists, as plain rows in one statement
(``page_select`` and ``read_page``)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, Table, bindparam, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.postgres import rows

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


@functools.cache
def page_select(table: Table, column: str, key: str, descending: bool) -> Select[Any]:
    """One statement reading a page of ``table`` and the whole list's count: the rows
    whose ``column`` is the parameter ``value``, ordered by ``key`` then ``id`` (a total
    order), ``limit`` of them from ``offset`` (parameters too, so the statement is built and
    compiled once per list and order; ``read_page`` gives the values).

    The answer always has a row: its ``total`` column is the count, and a page past the
    end is one row whose other columns are NULL (``read_page`` drops it). Both halves can
    use an index on ``(column, key, id)``: an index-only count, and an ordered scan that
    stops after the page.
    """
    where = table.c[column] == bindparam("value")
    listed = select(func.count().label("total")).select_from(table).where(where).subquery("listed")
    keys = (table.c[key], table.c.id)
    page = (
        select(*table.c)
        .where(where)
        .order_by(*(k.desc() if descending else k.asc() for k in keys))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .lateral("page")
    )
    return select(listed.c.total, *page.c).select_from(listed.outerjoin(page, true()))


async def read_page(
    session: AsyncSession, statement: Select[Any], value: Any, request: PageRequest[Any]
) -> tuple[list[dict[str, Any]], int]:
    """The page ``request`` names of ``page_select``'s statement for ``value``, as dicts
    (without ``total``), and the count."""
    params = {"value": value, "limit": request.page_size, "offset": request.offset}
    found = await rows(session, statement, params)
    total = int(found[0]["total"])
    page = [
        {k: v for k, v in row.items() if k != "total"} for row in found if row["id"] is not None
    ]
    return page, total
