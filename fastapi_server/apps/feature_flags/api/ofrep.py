"""OFREP endpoints (OpenFeature Remote Evaluation Protocol 0.3.0): ``/ofrep/v1/...``.

Answers and errors take the protocol's shapes, not ``{"detail": ...}``, so that the
OpenFeature community's OFREP providers read them. Version 0.3.0 of the spec has no
``/ofrep/v1/configuration`` endpoint (it was removed from the protocol), so neither do we.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from fastapi_server.apps.feature_flags import ofrep
from fastapi_server.apps.feature_flags.entitlements import OfrepCaller, ofrep_caller
from fastapi_server.apps.feature_flags.errors import OfrepError
from fastapi_server.apps.feature_flags.schemas import (
    OfrepEvaluationFailure,
    OfrepFailure,
    OfrepFlagNotFound,
)
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.http import APIRouter
from fastapi_server.resources.openapi import OWN_ERRORS

router = APIRouter(prefix="/ofrep/v1", tags=["OpenFeature (OFREP)"])

# Documented like the spec's operations: a Bearer token or an X-API-Key, or nothing.
SECURITY: dict[str, Any] = {
    "security": [{"OAuth2PasswordBearer": []}, {}],
    "parameters": [
        {
            "name": "X-API-Key",
            "in": "header",
            "required": False,
            "description": "A service's key (FEATURE_FLAGS_OFREP_API_KEY): evaluate for any "
            "targetingKey.",
            "schema": {"type": "string"},
        }
    ],
}
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"context": {"type": "object", "additionalProperties": True}},
                },
                "example": {"context": {"targetingKey": "user-id"}},
            }
        },
    }
}


def _error(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


UNAUTHORIZED = _error(OfrepFailure, "A bad Bearer token or X-API-Key (`errorCode` `GENERAL`)")
NOT_READY = _error(OfrepFailure, "The flags are not loaded yet (`errorCode` `GENERAL`)")
FLAG_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error(OfrepEvaluationFailure, "The body is not JSON, or its context is not valid"),
    401: UNAUTHORIZED,
    404: _error(OfrepFlagNotFound, "No flag has this key"),
    500: NOT_READY,
}
BULK_ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "The flags are unchanged (`If-None-Match`)"},
    400: _error(OfrepFailure, "The body is not JSON, or its context is not valid"),
    401: UNAUTHORIZED,
    500: NOT_READY,
}


def _json(body: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code, headers, media_type="application/json")


async def _evaluated(
    request: Request,
    key: str | None,
    answer: Callable[[OfrepCaller, ofrep.TargetKey], Awaitable[Response]],
) -> Response:
    """Read the context, decide whose it is, and answer, rendering errors as OFREP does."""
    try:
        context = ofrep.read_context(await request.body())
        requested = ofrep.requested_key(context)
        caller = await ofrep_caller(request, requested)
        target = requested if caller.any_target else caller.user_id
        return await answer(caller, target)
    except OfrepError as error:
        # One flag's 400 and 404 name it; the bulk's 400 and every 401/500 do not.
        body = error.ofrep_body(key if error.status_code in (400, 404) else None)
        return _json(ofrep.dumps(body), error.status_code)
    except AppError as error:  # NotAuthenticated: the spec's 401 carries no fixed body
        body = {"errorCode": "GENERAL", "errorDetails": error.detail_message}
        return _json(ofrep.dumps(body), error.status_code)


@router.post(
    "/evaluate/flags/{key}",
    responses=FLAG_ERRORS,
    openapi_extra={**SECURITY, **REQUEST_BODY, **OWN_ERRORS},
)
async def evaluate_flag(key: str, request: Request) -> Response:
    """Evaluate one flag for the caller: `{key, value, reason, variant, metadata}`, with
    the reasons `STATIC`, `TARGETING_MATCH`, `SPLIT` and `DISABLED`.

    Whose context: a Bearer token's user (a `targetingKey` naming anyone else is
    ignored); without credentials, anonymous; a superuser or a service with the
    `X-API-Key` evaluates for the `targetingKey` it sends. Served from the process's
    cache (no query per evaluation)."""

    async def answer(caller: OfrepCaller, target: ofrep.TargetKey) -> Response:
        return _json(ofrep.evaluate_flag(key, target))

    return await _evaluated(request, key, answer)


@router.post(
    "/evaluate/flags",
    responses=BULK_ERRORS,
    openapi_extra={**SECURITY, **REQUEST_BODY, **OWN_ERRORS},
)
async def evaluate_flags(request: Request) -> Response:
    """Evaluate every flag the caller may see, `{flags: [...]}`, with an `ETag`; `304`
    when `If-None-Match` names the current one. Anonymous callers get only the flags on
    for everyone; whose context is decided as for one flag."""

    async def answer(caller: OfrepCaller, target: ofrep.TargetKey) -> Response:
        anonymous = caller.user_id is None and not caller.any_target
        bulk = ofrep.evaluate_all(target, anonymous=anonymous)
        headers = {"ETag": bulk.etag}
        if ofrep.etag_matches(request.headers.get("if-none-match"), bulk.etag):
            return Response(status_code=304, headers=headers)
        return _json(bulk.body, headers=headers)

    return await _evaluated(request, None, answer)
