"""One pagination and ordering contract for every list endpoint, free of HTTP and SQL.

A list takes ``page`` (1-based), ``page_size`` (5 to 100 in steps of 5, default 10),
``order_by`` (each list names its own keys, in a ``StrEnum``) and ``order_direction``
(``asc`` or ``desc``), and answers ``{"total": ..., "results": [...]}``. Every order ends
with the row's id, so the order is total and pages are stable: while nothing changes, each
row appears on exactly one page.

The HTTP side (query parameters, 422 on out-of-range values) is
``resources.http.page_query``; the SQL side is ``resources.database.pages.fetch_page``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel

from fastapi_server.lib.errors import AppError

DEFAULT_PAGE = 1
MAX_PAGE = 1_000_000  # 100 million rows at 100 a page; keeps the OFFSET a sane integer
DEFAULT_PAGE_SIZE = 10
MIN_PAGE_SIZE = 5
MAX_PAGE_SIZE = 100
PAGE_SIZE_STEP = 5
PAGE_SIZES = tuple(range(MIN_PAGE_SIZE, MAX_PAGE_SIZE + 1, PAGE_SIZE_STEP))


class OrderDirection(StrEnum):
    """Ascending or descending, on every key of the order (the id included)."""

    ASC = "asc"
    DESC = "desc"


class InvalidPageRequest(AppError):
    code = "INVALID_PAGE_REQUEST"
    status_code = 422
    message = (
        f"page must be 1 to {MAX_PAGE}; page_size {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE} "
        f"in steps of {PAGE_SIZE_STEP}."
    )


OrderT = TypeVar("OrderT", bound=StrEnum)
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class PageRequest(Generic[OrderT]):
    """Which page of a list, in which order. Out-of-range values raise
    ``InvalidPageRequest`` (422), so core and scripts get the same limits as the API."""

    order_by: OrderT
    page: int = DEFAULT_PAGE
    page_size: int = DEFAULT_PAGE_SIZE
    order_direction: OrderDirection = OrderDirection.ASC

    def __post_init__(self) -> None:
        if not 1 <= self.page <= MAX_PAGE or self.page_size not in PAGE_SIZES:
            raise InvalidPageRequest(page=self.page, page_size=self.page_size)

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return (self.page - 1) * self.page_size

    @property
    def descending(self) -> bool:
        return self.order_direction is OrderDirection.DESC


class Page(BaseModel, Generic[ItemT]):
    """One page of a list: how many rows the whole list has, and this page's rows."""

    total: int
    results: list[ItemT]
