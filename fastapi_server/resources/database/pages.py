"""The SQL side of ``lib.pagination``: one page of an ORM query and the list's total."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from fastapi_server.lib.pagination import PageRequest

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
