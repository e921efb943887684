"""``DirectRoute``: FastAPI's route class, calling the simplest endpoints directly.

An endpoint whose only parameter is the ``Request`` and which is annotated to return a
``Response`` leaves FastAPI nothing to do: no dependency to solve, no parameter to
validate, nothing to serialise (the response is passed through as it is). FastAPI's
handler still spends about 30 µs of CPU on it per request (an empty ``Response`` made,
headers, query string and cookies parsed for nothing, per-request context), which was
half of what ``GET /feature-flags/evaluate`` cost in all. ``DirectRoute`` calls such an
endpoint itself and uses FastAPI's handler for every other one.

The shortcut is taken only where the answer is the one FastAPI's handler would give:

* every dependency still runs: one declared on the route, on its router, on a router
  that includes it or on the app makes the endpoint go through FastAPI's handler;
* while FastAPI's telemetry is active for a request, the request goes through FastAPI's
  handler too, so its spans stay complete;
* the return annotation must name a ``Response`` class, so mypy checks what the endpoint
  returns (``response_model=`` still documents the body in ``/docs``), and a value that
  is not a ``Response`` all the same is a ``TypeError`` (answered 500), where FastAPI
  would have serialised it;
* only with the FastAPI version this module was checked against
  (``CHECKED_FASTAPI_VERSION``): how an included route's dependencies are found (see
  ``_effective_dependant``) is FastAPI's internal business. With another version no
  endpoint is called directly, and ``tests/platform/test_direct_routes.py`` fails until
  the check is made again.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import fastapi
from fastapi import Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

CHECKED_FASTAPI_VERSION = "0.163.2"

# Where FastAPI's native telemetry keeps a request's state; set (not None) only while
# telemetry is active for that request.
_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


class DirectRoute(APIRoute):
    """An ``APIRoute`` that calls ``async def endpoint(request: Request) -> Response``
    directly (see the module's docstring)."""

    def get_route_handler(self) -> Handler:
        # Built for every route: a directly called one still needs it for the requests
        # telemetry observes.
        handler = super().get_route_handler()
        dependant = _effective_dependant(self)
        if dependant is None or (called := _direct_call(dependant)) is None:
            return handler
        endpoint, request_param = called
        name = getattr(endpoint, "__qualname__", repr(endpoint))

        async def direct(request: Request) -> Response:
            if request.scope.get(_TELEMETRY_SCOPE_KEY) is not None:
                return await handler(request)
            response = await endpoint(**{request_param: request})
            if not isinstance(response, Response):
                raise TypeError(
                    f"{name} is annotated to return a Response but returned "
                    f"{type(response).__name__}"
                )
            return response

        return direct


def _effective_dependant(route: APIRoute) -> Dependant | None:
    """The ``Dependant`` FastAPI builds ``route``'s handler from, with the dependencies of
    the routers that include it; None when this module cannot tell.

    A route reached through ``include_router`` is served, in this FastAPI, by a context
    per inclusion that holds the merged dependencies; FastAPI builds that context's
    handler when the context is first needed (and again when an included router's routes
    change) by calling ``get_route_handler`` with the context in a context variable.
    FastAPI's own ``get_route_handler`` reads the same variable the same way.
    """
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    if fastapi.__version__ != CHECKED_FASTAPI_VERSION or context_var is None:
        return None
    context = context_var.get()
    if context is None or getattr(context, "original_route", None) is not route:
        return route.dependant
    dependant = getattr(context, "dependant", None)
    return dependant if isinstance(dependant, Dependant) else None


def _direct_call(dependant: Dependant) -> tuple[Callable[..., Awaitable[Any]], str] | None:
    """The endpoint and the name of its Request parameter, if it may be called directly:
    a coroutine function with no dependency whose one parameter is the Request and whose
    return annotation is a ``Response`` class."""
    call, request_param = dependant.call, dependant.request_param_name
    if call is None or request_param is None or dependant.dependencies:
        return None
    if not inspect.iscoroutinefunction(call):
        return None
    if list(inspect.signature(call).parameters) != [request_param]:
        return None
    try:
        returns = get_typed_return_annotation(call)
    except NameError:  # an annotation that cannot be resolved
        return None
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        return None
    return call, request_param
