"""The HTTP contract: one error shape for every error, and an OpenAPI document that says
so (error component, statuses and their codes, operation ids, Retry-After)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.errors import MAX_BODY_BYTES
from fastapi_server.tests.helpers.users import auth_headers, make_user


def error_code(response: httpx.Response) -> str:
    """``detail.code``, after checking the body has the platform's error shape."""
    detail = response.json()["detail"]
    assert isinstance(detail["message"], str)
    assert detail["message"]
    code: str = detail["code"]
    return code


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"token": ', "application/json"),  # cut short
        (b'{"token": "\xff\xfe"}', "application/json"),  # not UTF-8
    ],
)
async def test_a_malformed_body_is_400_malformed_body(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(
        "/auth/refresh-tokens", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert error_code(response) == "MALFORMED_BODY"


async def test_an_unknown_path_is_404_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/users/user", "GET, HEAD, PATCH"),
        ("DELETE", "/feature-flags", "GET, HEAD, POST"),
        ("PUT", "/feature-flags/FF_X", "DELETE, GET, HEAD, PATCH"),
        ("GET", "/login", "POST"),
    ],
)
async def test_a_wrong_method_is_405_allowing_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert error_code(response) == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == allow


async def test_a_literal_path_refused_as_a_parameter_is_405_too(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    """``/projects/projects/{project_id}`` takes PATCH, and its UUID refuses ``user``;
    ``/projects/projects/user`` itself takes only GET: 405, not 422."""
    headers = auth_headers(await make_user(dbs))
    response = await client.patch("/projects/projects/user", headers=headers)
    assert response.status_code == 405
    assert error_code(response) == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET, HEAD"
    not_a_uuid = await client.patch("/projects/projects/nope", headers=headers, json={})
    assert not_a_uuid.status_code == 422


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    too_big = b"x" * (MAX_BODY_BYTES + 1)
    declared = await client.post("/register", content=too_big)
    assert declared.status_code == 413
    assert error_code(declared) == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b'{"x": "' + b"x" * 65536

    streamed = await client.post(
        "/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert error_code(streamed) == "PAYLOAD_TOO_LARGE"


async def test_validation_errors_are_422_with_the_list_under_detail_errors(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/auth/refresh-tokens", json={"token": ""})
    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_ERROR"
    assert [error["loc"] for error in response.json()["detail"]["errors"]] == [["body", "token"]]


async def test_a_pool_timeout_is_503_with_retry_after_and_one_warning(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=database_url,
        env="test",
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout=0.2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
            app.state.database.engine.connect() as held,  # the pool's only connection
        ):
            await held.exec_driver_sql("SELECT 1")
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                response = await http.get("/feature-flags")
    assert response.status_code == 503
    assert error_code(response) == "DATABASE_UNAVAILABLE"
    assert int(response.headers["retry-after"]) >= 1
    request_id = response.headers["x-request-id"]
    lines = [record for record in caplog.records if getattr(record, "request_id", "") == request_id]
    assert [(line.levelname, line.exc_info) for line in lines] == [("WARNING", None)]


# -- The OpenAPI document ------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(settings: Settings) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]


def test_operation_ids_are_readable_and_unique(openapi: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(openapi)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", id_) for id_ in ids), ids
    assert {"users_login", "users_read_me", "feature_flags_toggle_flag", "health_ready"} <= set(ids)


ERROR_SCHEMAS = ("#/components/schemas/Error", "#/components/schemas/ValidationErrorBody")


def test_every_error_response_has_the_error_body_and_its_codes(openapi: dict[str, Any]) -> None:
    assert set(openapi["components"]["schemas"]["Error"]["properties"]) == {"detail"}
    for method, path, operation in operations(openapi):
        responses = operation["responses"]
        assert ("503" in responses) is (path != "/_status"), (method, path)  # no database
        own_body = operation.get("x-own-error-body", False)
        assert own_body is path.startswith("/ofrep/"), (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]["$ref"]
            if own_body and "x-error-codes" not in response:  # the protocol's own body
                assert (
                    schema.removeprefix("#/components/schemas/")
                    in (openapi["components"]["schemas"])
                ), (method, path, status)
                assert schema not in ERROR_SCHEMAS, (method, path, status)
                continue
            expected = "ValidationErrorBody" if status == "422" else "Error"
            assert schema == f"#/components/schemas/{expected}", (method, path, status)
            assert response["x-error-codes"], (method, path, status)
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], (method, path, status)


def test_each_operation_lists_the_statuses_it_answers(openapi: dict[str, Any]) -> None:
    def codes(path: str, method: str) -> dict[str, list[str]]:
        responses = openapi["paths"][path][method]["responses"]
        return {status: r["x-error-codes"] for status, r in responses.items() if int(status) >= 400}

    assert codes("/auth/refresh-tokens", "post") == {
        "400": ["REFRESH_TOKEN_INVALID", "MALFORMED_BODY"],
        "413": ["PAYLOAD_TOO_LARGE"],
        "422": ["VALIDATION_ERROR"],
        "503": ["DATABASE_UNAVAILABLE"],
    }
    assert codes("/feature-flags", "post") == {
        "400": ["INVALID_FLAG_VARIANTS", "MALFORMED_BODY"],
        "401": ["NOT_AUTHENTICATED"],
        "403": ["NOT_SUPERUSER"],
        "409": ["FEATURE_FLAG_ALREADY_EXISTS"],
        "413": ["PAYLOAD_TOO_LARGE"],
        "422": ["VALIDATION_ERROR"],
        "503": ["DATABASE_UNAVAILABLE"],
    }


def test_an_endpoint_added_later_inherits_the_contract(settings: Settings) -> None:
    app: FastAPI = create_app(settings)

    @app.post("/later/{key}", tags=["later app"])
    async def do_later(key: int) -> dict[str, int]:
        return {"key": key}

    operation = app.openapi()["paths"]["/later/{key}"]["post"]
    assert operation["operationId"] == "later_app_do_later"
    assert set(operation["responses"]) == {"200", "422", "503"}
