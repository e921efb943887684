"""``DirectRoute``: FastAPI's route class, calling the simplest endpoints directly.

An endpoint whose only parameter is the ``Request`` and which is annotated to return a
``Response`` leaves FastAPI nothing to do: no dependency to solve, no parameter to
validate, nothing to serialise (the response is passed through as it is). FastAPI's
handler still spends about 30 µs of CPU on it per request (an empty ``Response`` made,
headers, query string and cookies parsed for nothing, per-request context), which is
half of what ``GET /feature-flags/evaluate`` costs in all. ``DirectRoute`` calls such
an endpoint itself and uses FastAPI's handler for every other one.

The shortcut is taken only where it changes nothing a caller could see:

* every dependency still runs: one declared on the route, on its router or on a router
  that includes it (or on the app) makes the endpoint go through FastAPI's handler;
* with FastAPI's telemetry active for a request, the request goes through FastAPI's
  handler too, so its spans stay complete;
* the return annotation must name a ``Response`` class, so mypy checks what the
  endpoint returns (``response_model=`` still documents the body in ``/docs``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Where FastAPI's native telemetry keeps a request's state; set (not None) only while
# telemetry is active for that request.
_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


class DirectRoute(APIRoute):
    """An ``APIRoute`` that calls ``async def endpoint(request: Request) -> Response``
    directly (see the module's docstring)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        dependant = _effective_dependant(self)
        if dependant is None or (called := _direct_call(dependant)) is None:
            return handler
        endpoint, request_param = called

        async def direct(request: Request) -> Response:
            if request.scope.get(_TELEMETRY_SCOPE_KEY) is not None:
                return await handler(request)
            response: Response = await endpoint(**{request_param: request})
            return response

        return direct


def _effective_dependant(route: APIRoute) -> Dependant | None:
    """The ``Dependant`` FastAPI builds ``route``'s handler from, with the dependencies of
    the routers that include it; None when this version of FastAPI does not tell.

    For a route reached through ``include_router`` FastAPI (pinned in requirements.txt)
    builds the handler once per inclusion, from a context holding the merged
    dependencies, which it passes through a context variable while it calls
    ``get_route_handler``. Without that variable no route takes the shortcut.
    """
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    if context_var is None:
        return None
    context = context_var.get()
    if context is None or getattr(context, "original_route", None) is not route:
        return route.dependant
    dependant = getattr(context, "dependant", None)
    return dependant if isinstance(dependant, Dependant) else None


def _direct_call(dependant: Dependant) -> tuple[Callable[..., Awaitable[Any]], str] | None:
    """The endpoint and the name of its Request parameter, if it may be called directly."""
    call, request_param = dependant.call, dependant.request_param_name
    if call is None or not inspect.iscoroutinefunction(call) or not request_param:
        return None
    if (
        dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        return None
    try:
        returns = inspect.signature(call, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):  # an annotation that cannot be resolved
        return None
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        return None
    return call, request_param
