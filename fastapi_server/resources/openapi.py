"""The OpenAPI document as a contract clients generate code from.

Applied to every operation, whichever app adds it, so no endpoint needs to repeat it:

- operation ids ``<first tag>_<endpoint function>`` (``users_read_me``), stable names
  for generated clients' methods;
- the platform's error body as the ``Error`` component, on every error response, with
  the ``code`` values of each status in ``x-error-codes``;
- the statuses the platform itself answers: 422 ``VALIDATION_ERROR`` for operations with
  input, 400 ``MALFORMED_BODY`` and 413 ``PAYLOAD_TOO_LARGE`` for those with a body (JSON
  or form), 401 ``NOT_AUTHENTICATED`` for those taking a token, 503
  ``DATABASE_UNAVAILABLE`` for all but those marked ``openapi_extra=NO_DATABASE``;
- operations marked ``openapi_extra=OWN_ERRORS`` (a protocol's error body, OFREP's)
  keep the error schemas they declare; only the platform's own 413 and 503 are added;
- ``Retry-After`` on every 429 and 503.

An endpoint declares its own errors with ``lib.errors.error_responses`` (or
``error_doc``); ``install`` wires this module into an app.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from fastapi_server.lib.errors import ERROR_CODES_KEY, codes_in
from fastapi_server.resources.errors import MESSAGES, RETRY_AFTER_STATUSES

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
JSON = "application/json"
ERROR_REF = "#/components/schemas/Error"
VALIDATION_REF = "#/components/schemas/ValidationErrorBody"
NO_DATABASE_KEY = "x-no-database"
NO_DATABASE: dict[str, Any] = {NO_DATABASE_KEY: True}
"""``openapi_extra`` of an endpoint that never touches the database (no 503 listed)."""
OWN_ERRORS_KEY = "x-own-error-body"
OWN_ERRORS: dict[str, Any] = {OWN_ERRORS_KEY: True}
"""``openapi_extra`` of an endpoint that answers its errors in the body of a protocol of
its own (OFREP's ``{key, errorCode, errorDetails}``) and reads its own input: the errors
it declares keep the schemas it gives them, and the platform adds only the statuses it
answers itself, in its own shape (413 for a body, 503). The marker stays in the document,
so clients and the contract's tests know which operations these are."""


class ErrorDetail(BaseModel):
    """What went wrong: ``code`` for programs, ``message`` for people, and fields some
    codes add (``reason``, ``retry_after``, ``request_id``...)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["NOT_FOUND"])
    message: str


class Error(BaseModel):
    """The body of every error answer."""

    detail: ErrorDetail


class FieldError(BaseModel):
    """One invalid input: where (``loc``), why (``msg``, ``type``)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorDetail(ErrorDetail):
    """``VALIDATION_ERROR``, with every invalid input under ``errors``."""

    errors: list[FieldError]


class ValidationErrorBody(BaseModel):
    """The body of a 422: the ``Error`` shape, with ``detail.errors``."""

    detail: ValidationErrorDetail


def operation_id(route: APIRoute) -> str:
    """``<first tag>_<endpoint function name>``: ``users_read_me``, ``health_ready``."""
    tag = str(route.tags[0]) if route.tags else "app"
    return f"{re.sub(r'[^0-9A-Za-z]+', '_', tag).strip('_').lower()}_{route.name}"


def install(app: FastAPI) -> None:
    """Generate ``app``'s operation ids with ``operation_id`` and complete its OpenAPI
    document with ``complete``. Call it before any router is included."""
    app.router.generate_unique_id_function = operation_id
    plain_openapi = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not completed:
            completed.append(complete(plain_openapi()))
        return completed[0]

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error component and the platform's statuses to every operation (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Error, ValidationErrorBody):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                _complete_operation(operation)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced
        components.pop(unused, None)
    return schema


def _complete_operation(operation: dict[str, Any]) -> None:
    if operation.get(OWN_ERRORS_KEY):
        _complete_own_errors_operation(operation)
        return
    responses: dict[str, Any] = operation.setdefault("responses", {})
    body = operation.get("requestBody")
    if body is not None or operation.get("parameters") or "422" in responses:
        responses["422"] = {
            "description": "`VALIDATION_ERROR`: the request is not valid (`detail.errors`).",
            ERROR_CODES_KEY: ["VALIDATION_ERROR"],
            "content": {JSON: {"schema": {"$ref": VALIDATION_REF}}},
        }
    if body is not None:
        _add_code(responses, 400, "MALFORMED_BODY")
        _add_code(responses, 413, "PAYLOAD_TOO_LARGE")
    if operation.get("security"):
        _add_code(responses, 401, "NOT_AUTHENTICATED")
    if not operation.pop(NO_DATABASE_KEY, False):
        _add_code(responses, 503, "DATABASE_UNAVAILABLE")
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400 and status != "422":
            _describe_error(int(status), response)


def _complete_own_errors_operation(operation: dict[str, Any]) -> None:
    """An operation marked ``OWN_ERRORS``: its declared errors as they are; the platform's
    413 (when it takes a body) and 503 (unless ``NO_DATABASE``) in the platform's shape."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's, for parameters the endpoint reads itself
    platform: list[tuple[int, str]] = []
    if operation.get("requestBody") is not None:
        platform.append((413, "PAYLOAD_TOO_LARGE"))
    if not operation.pop(NO_DATABASE_KEY, False):
        platform.append((503, "DATABASE_UNAVAILABLE"))
    for status, code in platform:
        _add_code(responses, status, code)
        _describe_error(status, responses[str(status)])


def _add_code(responses: dict[str, Any], status: int, code: str) -> None:
    response = responses.setdefault(str(status), {"description": ""})
    codes = _codes(response)
    if code not in codes:
        response[ERROR_CODES_KEY] = [*codes, code]
        line = f"`{code}`: {MESSAGES.get(code, code)}"
        response["description"] = f"{response['description'].rstrip('.')}; {line}".strip("; ")


def _codes(response: dict[str, Any]) -> list[str]:
    codes = response.get(ERROR_CODES_KEY)
    return list(codes) if codes is not None else codes_in(response.get("description", ""))


def _describe_error(status: int, response: dict[str, Any]) -> None:
    response[ERROR_CODES_KEY] = _codes(response)
    response["content"] = {JSON: {"schema": {"$ref": ERROR_REF}}}
    if status in RETRY_AFTER_STATUSES:
        response.setdefault("headers", {})["Retry-After"] = {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
