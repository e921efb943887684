"""The HTTP side of the database: each request's scope, the route class and the router.

Every ``api/api.py`` builds its router with this module's ``APIRouter``, whose route class
(``DatabaseRoute``) gives each request its database access and finishes it before the
response is sent. Endpoints take ``DBs`` (every app's data layer on the request's one
transaction) or ``DBSession`` (the ORM session alone). List endpoints read their page
with ``page_query`` (``lib.pagination``'s contract as query parameters).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

import anyio
import fastapi
from fastapi import Depends, Query, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.lib.pagination import (
    DEFAULT_PAGE,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    MIN_PAGE_SIZE,
    PAGE_SIZE_STEP,
    OrderDirection,
    OrderT,
    PageRequest,
)
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database, RequestScope

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestDatabase:
    """One request's database access: opened on first use, finished by ``DatabaseRoute``.

    GET (and HEAD, OPTIONS) requests write nothing, so they get a ``ReadScope``: no
    BEGIN/COMMIT round trips, and an ORM session that refuses writes. Other requests get
    a ``WriteScope``: one session in one transaction, committed when the endpoint returns,
    before the response is sent (a failed commit answers 500, never a 200), and rolled
    back on any exception except an ``AppError`` with ``keeps_changes``, whose bookkeeping
    is committed before the error is answered. The scope comes from the app's
    ``Database`` (``app.state.database``), the one place a test puts every request into
    its own transaction. A request that never touches the database costs nothing.
    """

    __slots__ = ("_request", "_scope")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._scope: RequestScope | None = None

    def open(self) -> AsyncSession:
        """The request's session (nothing is checked out until it is used)."""
        scope = self._scope
        if scope is None:
            database: Database = self._request.app.state.database
            scope = database.request_scope(self._request.method in READ_ONLY_METHODS)
            self._scope = scope
        return scope.session

    @property
    def holds_resources(self) -> bool:
        """Whether ``finish`` has work to do: a transaction, or a read session in use."""
        return self._scope is not None and self._scope.holds_resources

    async def finish(self, error: BaseException | None) -> None:
        """Commit or roll back as the scope does (see the class), then close."""
        if self._scope is not None:
            await self._scope.finish(error)


_REQUEST_DATABASE = "fastapi_server.database"  # the ASGI scope key of RequestDatabase


class DatabaseRoute(APIRoute):
    """The route class of every router: gives each request a ``RequestDatabase`` around the
    whole handler (dependencies, endpoint and response rendering), finished before the
    response is sent. Cheaper than a dependency with ``yield``, which FastAPI runs through
    two context managers and a cancellation shield on every request."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def with_database(request: Request) -> Response:
            access = RequestDatabase(request)
            request.scope[_REQUEST_DATABASE] = access
            try:
                response = await handler(request)
            except BaseException as error:
                if access.holds_resources:
                    with anyio.CancelScope(shield=True):  # a cancelled request still cleans up
                        await access.finish(error)
                raise
            if access.holds_resources:
                with anyio.CancelScope(shield=True):
                    await access.finish(None)
            return response

        return with_database


def request_database(request: Request) -> RequestDatabase:
    """The request's ``RequestDatabase``; a clear error on a route without ``DatabaseRoute``."""
    access = request.scope.get(_REQUEST_DATABASE)
    if not isinstance(access, RequestDatabase):
        raise RuntimeError(
            f"{request.url.path} uses the database but its router has no "
            "route_class=DatabaseRoute: build routers with resources.http.APIRouter"
        )
    return access


async def get_db_session(request: Request) -> AsyncSession:
    """FastAPI dependency: the request's session (``RequestDatabase``), for endpoints that
    need the ORM only; most take ``DBs`` (``databases.py``)."""
    return request_database(request).open()


DBSession = Annotated[AsyncSession, Depends(get_db_session)]


def databases_of(request: Request) -> Databases:
    """The request's ``Databases``, on the request's one transaction (``RequestDatabase``:
    committed before the response is sent)."""
    return Databases(request_database(request).open())


async def get_databases(request: Request) -> Databases:
    """FastAPI dependency: ``databases_of`` the request."""
    return databases_of(request)


DBs = Annotated[Databases, Depends(get_databases)]


class APIRouter(fastapi.APIRouter):
    """FastAPI's router with ``DatabaseRoute`` built in: every ``api/api.py`` uses this one,
    so no router can forget its requests' database scope."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", DatabaseRoute)
        super().__init__(**kwargs)


def page_query(
    order_keys: type[OrderT],
    default_order: OrderT,
    default_direction: OrderDirection = OrderDirection.ASC,
) -> Callable[..., Awaitable[PageRequest[OrderT]]]:
    """A dependency reading ``lib.pagination``'s query parameters into a ``PageRequest``:
    ``page``, ``page_size``, ``order_by`` (one of ``order_keys``) and ``order_direction``.
    Values out of range answer FastAPI's 422, like any other bad parameter."""

    async def page_request(**params: Any) -> PageRequest[OrderT]:
        return PageRequest(**params)  # async: FastAPI would run a plain def in a thread

    def parameter(name: str, annotation: Any, default: Any, query: Any) -> inspect.Parameter:
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=Annotated[annotation, query],
        )

    # FastAPI reads a dependency's parameters from its signature; this one's order_by
    # type is the list's own.
    page_request.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            parameter("page", int, DEFAULT_PAGE, Query(ge=1, le=MAX_PAGE, description="1-based.")),
            parameter(
                "page_size",
                int,
                DEFAULT_PAGE_SIZE,
                Query(
                    ge=MIN_PAGE_SIZE,
                    le=MAX_PAGE_SIZE,
                    multiple_of=PAGE_SIZE_STEP,
                    description=f"{MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}, in steps of "
                    f"{PAGE_SIZE_STEP}.",
                ),
            ),
            parameter(
                "order_by",
                order_keys,
                default_order,
                Query(description="The sort key; the id breaks ties, so pages are stable."),
            ),
            parameter("order_direction", OrderDirection, default_direction, Query()),
        ]
    )
    return page_request
