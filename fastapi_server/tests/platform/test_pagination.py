"""The pagination contract's rules, as core and scripts meet them (no HTTP)."""

from __future__ import annotations

from enum import StrEnum

import pytest

from fastapi_server.lib.pagination import InvalidPageRequest, OrderDirection, PageRequest


class Order(StrEnum):
    NAME = "name"


def test_a_page_request_knows_its_offset_and_direction() -> None:
    request = PageRequest(Order.NAME, page=3, page_size=25, order_direction=OrderDirection.DESC)
    assert request.offset == 50
    assert request.descending
    default = PageRequest(Order.NAME)
    assert (default.page, default.page_size, default.offset, default.descending) == (
        1,
        10,
        0,
        False,
    )


@pytest.mark.parametrize(
    ("page", "page_size"), [(0, 10), (1_000_001, 10), (1, 0), (1, 4), (1, 7), (1, 105)]
)
def test_out_of_range_values_are_refused_with_a_422_error(page: int, page_size: int) -> None:
    with pytest.raises(InvalidPageRequest) as caught:
        PageRequest(Order.NAME, page=page, page_size=page_size)
    assert caught.value.status_code == 422
    assert caught.value.to_detail()["code"] == "INVALID_PAGE_REQUEST"
