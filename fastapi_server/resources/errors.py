"""One error shape for every answer that is not a success.

Every error body is ``{"detail": {"code": ..., "message": ...}}`` (plus fields of its
own, such as ``reason``, ``retry_after`` or ``request_id``), whatever raised it: an
``AppError`` of an app, validation (422 ``VALIDATION_ERROR``, the list under
``detail.errors``), a malformed body (400 ``MALFORMED_BODY``), routing (404 ``NOT_FOUND``,
405 ``METHOD_NOT_ALLOWED`` with every method the path takes in ``Allow``, also when
only a route with a parameter took the method and refused the path's literal segment), a body over
the limit (413 ``PAYLOAD_TOO_LARGE``), the database being away (503
``DATABASE_UNAVAILABLE``) or a bug (500 ``INTERNAL_ERROR``). Every 429 and 503 carries
``Retry-After``. ``install`` wires it all into an app.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_server.lib.errors import AppError
from fastapi_server.lib.logging import request_id_var
from fastapi_server.resources.database.postgres import (
    DatabaseError,
    DriverError,
    PoolTimeout,
    is_database_unavailable,
    is_refused_value,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body accepted (413 above it); a flag with 10,000 user ids is
about 400 KB."""
DATABASE_RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of 503 ``DATABASE_UNAVAILABLE``: the pool reconnects by itself, so a
client retries soon."""
DEFAULT_RETRY_AFTER_SECONDS = 2
"""``Retry-After`` of any other 429 or 503 that names none (a rate limiter, ``/_ready``)."""
RETRY_AFTER_STATUSES = frozenset({429, 503})
CANDIDATE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Codes of the errors answered by the platform rather than by an app.
STATUS_CODES: dict[int, str] = {
    400: "MALFORMED_BODY",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    500: "INTERNAL_ERROR",
    503: "DATABASE_UNAVAILABLE",
}
MESSAGES: dict[str, str] = {
    "MALFORMED_BODY": "The request body could not be parsed.",
    "NOT_FOUND": "Nothing is at this path.",
    "METHOD_NOT_ALLOWED": "This path does not take this method; `Allow` lists those it takes.",
    "PAYLOAD_TOO_LARGE": f"The request body is larger than {MAX_BODY_BYTES} bytes.",
    "VALIDATION_ERROR": "The request is not valid; `errors` says where and why.",
    "INTERNAL_ERROR": "Something went wrong on our side.",
    "DATABASE_UNAVAILABLE": "The database is unreachable; try again shortly.",
    "INVALID_INPUT": "A value in the request is not valid.",
}


def error_response(
    status: int, code: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The platform's error body for ``code`` (its message from ``MESSAGES``)."""
    detail = {"code": code, "message": MESSAGES.get(code, code), **extra}
    return _ASCIIJSONResponse(status_code=status, content={"detail": detail}, headers=headers)


class _ASCIIJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: encodes any input echoed back, even lone surrogates."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = None
    if exc.status_code in RETRY_AFTER_STATUSES:
        headers = {"Retry-After": str(exc.retry_after)}
    return _ASCIIJSONResponse(
        status_code=exc.status_code, content={"detail": exc.to_detail()}, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with the list under ``detail.errors``; a body that is not JSON at all is 400."""
    assert isinstance(exc, RequestValidationError)
    allowed = allowed_methods(request)
    if request.method not in allowed:
        # The path's own template (``/projects/projects/user``) does not take this method;
        # a route with a parameter there (``/projects/projects/{project_id}``) does, and
        # refused the literal segment as its parameter: the path is what is wrong, 405.
        return error_response(405, "METHOD_NOT_ALLOWED", headers={"Allow": ", ".join(allowed)})
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "MALFORMED_BODY")
    return error_response(422, "VALIDATION_ERROR", errors=jsonable_encoder(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors of routing and body parsing, in the platform's shape."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 405:
        allow = ", ".join(allowed_methods(request))
        return error_response(405, "METHOD_NOT_ALLOWED", headers={"Allow": allow})
    code = STATUS_CODES.get(status)
    if code is None:
        code = f"HTTP_{status}"
        MESSAGES.setdefault(code, str(exc.detail))
    headers = dict(exc.headers or {})
    if status in RETRY_AFTER_STATUSES:
        headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER_SECONDS))
    return error_response(status, code, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """The methods OpenAPI documents for this request's path (Starlette's own 405 names
    only those of the first route matching the path): those of the path template that
    matches it with the most literal characters (``/feature-flags/evaluate`` before
    ``/feature-flags/{codename}``, as routing does); for a path OpenAPI leaves out, every
    method some route takes there."""
    path = request.url.path
    templates = [
        (len(re.sub(r"\{[^}]*\}", "", template)), template, item)
        for template, item in request.app.openapi().get("paths", {}).items()
        if _template_regex(template).fullmatch(path)
    ]
    if templates:
        _, _, item = max(templates, key=lambda entry: entry[0])
        allowed = {method.upper() for method in item if method.upper() in CANDIDATE_METHODS}
    else:
        allowed = {
            method
            for method in CANDIDATE_METHODS
            if any(
                route.matches({**request.scope, "method": method})[0] is Match.FULL
                for route in request.app.router.routes
            )
        }
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


@functools.cache
def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]*\})", template)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database away is 503; a value it refused is the client's 400; else a 500."""
    if is_database_unavailable(exc):
        logger.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            exc.__class__.__name__,
        )
        return error_response(
            503,
            "DATABASE_UNAVAILABLE",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if is_refused_value(exc):
        logger.warning("database refused a value on %s %s", request.method, request.url.path)
        return error_response(400, "INVALID_INPUT")
    return _internal_error(request, exc)


def _internal_error(
    request: Request, exc: Exception, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = request_id_var.get() or ""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", headers=headers, request_id=request_id)


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    """The last resort (Starlette's outermost middleware, outside the one that sets
    ``X-Request-ID``): a 500 naming the request id, for the logs."""
    return _internal_error(request, exc, headers={"x-request-id": request_id_var.get() or ""})


class ContractMiddleware:
    """Refuses bodies over ``max_body_bytes`` (413) and gives every 429 and 503 a
    ``Retry-After``, whichever part of the app answered it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await error_response(413, "PAYLOAD_TOO_LARGE")(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:  # a body sent without Content-Length
                raise HTTPException(413)
            return message

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (
                RETRY_AFTER_STATUSES
            ):
                headers = message.setdefault("headers", [])
                if not any(name.lower() == b"retry-after" for name, _ in headers):
                    headers.append((b"retry-after", str(DEFAULT_RETRY_AFTER_SECONDS).encode()))
            await send(message)

        await self.app(scope, limited_receive, send_with_retry_after)


def install(app: FastAPI) -> None:
    """Give ``app`` the platform's error shape (handlers and ``ContractMiddleware``)."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # The database away surfaces as the driver's error, SQLAlchemy's pool timeout or the
    # OS's connection error: each handled here, so it is one warning line, not a traceback.
    app.add_exception_handler(DatabaseError, _database_error)
    app.add_exception_handler(DriverError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(OSError, _database_error)
    app.add_exception_handler(asyncpg.PostgresError, _database_error)
    app.add_exception_handler(asyncpg.InterfaceError, _database_error)
    app.add_exception_handler(Exception, _unhandled_error)
    app.add_middleware(ContractMiddleware)
