"""The OFREP endpoints over HTTP: answers, whose context, errors, bulk ETags; every answer
checked against the vendored OFREP 0.3.0 OpenAPI spec."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_server.apps.feature_flags.cache import FlagRule, bucket, flag_cache
from fastapi_server.apps.feature_flags.settings import get_feature_flags_settings
from fastapi_server.apps.users import tokens
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.tokens import TokenKind
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database, RequestScope
from fastapi_server.tests.feature_flags.ofrep import response_schema, validate
from fastapi_server.tests.helpers.users import auth_headers, make_user

ONE = "/ofrep/v1/evaluate/flags/{key}"
BULK = "/ofrep/v1/evaluate/flags"
SERVICE_KEY = "a-long-random-service-key-for-the-tests-0123456789"
COLOURS = {"blue": "#00f", "red": "#f00", "grey": "#888"}
LISTED = uuid.UUID(int=42)


@pytest.fixture
def flags() -> Iterator[None]:
    """The process cache holds these flags during the test."""
    saved = (flag_cache.rules, flag_cache.loaded)
    flag_cache.replace_all(
        [
            FlagRule("FF_ON", True),
            FlagRule("FF_OFF", False),
            FlagRule("FF_LISTED", True, frozenset({LISTED}), rollout_percentage=0),
            FlagRule("FF_COLOUR", True, flag_type="string", variants=COLOURS,
                     default_variant="blue", off_variant="grey",
                     weights={"blue": 50, "red": 50}),
            FlagRule("FF_LIMIT", True, flag_type="integer", variants={"low": 1, "high": 9},
                     default_variant="high", off_variant="low"),
            FlagRule("FF_RATIO", False, flag_type="float", variants={"a": 0.5, "b": 2},
                     default_variant="a", off_variant="b"),
            FlagRule("FF_LAYOUT", True, flag_type="object",
                     variants={"grid": {"columns": 3}, "list": {}},
                     default_variant="grid", off_variant="list"),
        ]
    )  # fmt: skip
    yield
    flag_cache.rules, flag_cache.loaded = saved


@pytest.fixture
def service_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("FEATURE_FLAGS_OFREP_API_KEY", SERVICE_KEY)
    get_feature_flags_settings.cache_clear()
    yield {"X-API-Key": SERVICE_KEY}
    get_feature_flags_settings.cache_clear()


async def _one(
    client: httpx.AsyncClient, key: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    response = await client.post(ONE.format(key=key), json=body, headers=headers or {})
    _check(ONE, response)
    return response


def _check(path: str, response: httpx.Response) -> None:
    """The answer fits the schema the spec gives its status (if the spec gives one)."""
    if response.status_code == 304:
        assert response.content == b""
        return
    assert response.headers["content-type"] == "application/json"
    schema = response_schema(path, response.status_code) or "generalErrorResponse"
    validate(schema, response.json())


async def test_every_type_answers_value_variant_and_reason(
    client: httpx.AsyncClient, flags: None
) -> None:
    expected = {
        "FF_ON": (True, "on", "STATIC"),
        "FF_OFF": (False, "off", "DISABLED"),
        "FF_LIMIT": (9, "high", "STATIC"),
        "FF_RATIO": (2.0, "b", "DISABLED"),
        "FF_LAYOUT": ({"columns": 3}, "grid", "STATIC"),
        "FF_COLOUR": ("#00f", "blue", "STATIC"),  # anonymous: not part of the split
    }
    for key, (value, variant, reason) in expected.items():
        response = await _one(client, key, {"context": {}})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "key": key, "value": value, "variant": variant, "reason": reason, "metadata": {}
        }  # fmt: skip
    ratio = await _one(client, "FF_RATIO", {})  # no context at all: anonymous
    assert isinstance(ratio.json()["value"], float)


async def test_an_ordinary_caller_evaluates_as_itself_whatever_the_body_says(
    client: httpx.AsyncClient, dbs: Databases, flags: None
) -> None:
    user = await make_user(dbs)
    headers = auth_headers(user)
    own = await _one(client, "FF_COLOUR", {"context": {"targetingKey": str(user.id)}}, headers)
    expected = "blue" if bucket("FF_COLOUR", user.id) < 50 else "red"
    assert (own.json()["variant"], own.json()["reason"]) == (expected, "SPLIT")
    # Naming the listed user is ignored: the token's user is not listed.
    other = await _one(client, "FF_LISTED", {"context": {"targetingKey": str(LISTED)}}, headers)
    assert other.json()["reason"] == "SPLIT"
    assert other.json()["value"] is (bucket("FF_LISTED", user.id) < 0)
    # So is it for an anonymous caller.
    anonymous = await _one(client, "FF_LISTED", {"context": {"targetingKey": str(LISTED)}})
    assert (anonymous.json()["value"], anonymous.json()["reason"]) == (False, "STATIC")


@pytest.mark.parametrize("who", ["superuser", "service"])
async def test_a_superuser_or_a_service_evaluates_for_any_targeting_key(
    client: httpx.AsyncClient,
    admin: User,
    admin_headers: dict[str, str],
    service_key: dict[str, str],
    flags: None,
    who: str,
) -> None:
    headers = admin_headers if who == "superuser" else service_key
    listed = await _one(client, "FF_LISTED", {"context": {"targetingKey": str(LISTED)}}, headers)
    assert (listed.json()["value"], listed.json()["reason"]) == (True, "TARGETING_MATCH")
    # Any string splits by the same sticky hash.
    session = await _one(client, "FF_COLOUR", {"context": {"targetingKey": "session-7"}}, headers)
    expected = "blue" if bucket("FF_COLOUR", "session-7") < 50 else "red"
    assert session.json()["variant"] == expected


async def test_an_ordinary_user_naming_someone_else_never_reaches_their_values(
    client: httpx.AsyncClient, dbs: Databases, flags: None
) -> None:
    plain = auth_headers(await make_user(dbs))
    response = await _one(client, "FF_LISTED", {"context": {"targetingKey": str(LISTED)}}, plain)
    assert response.json()["reason"] != "TARGETING_MATCH"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "PARSE_ERROR"),
        (b"[1, 2]", 400, "PARSE_ERROR"),
        (b'{"context": "me"}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 7}}', 400, "INVALID_CONTEXT"),
    ],
)
async def test_bad_bodies_get_the_spec_error(
    client: httpx.AsyncClient, flags: None, body: bytes, status: int, code: str
) -> None:
    for path in (ONE.format(key="FF_ON"), BULK):
        response = await client.post(path, content=body)
        assert response.status_code == status, path
        assert response.json()["errorCode"] == code
        _check(ONE if "FF_ON" in path else BULK, response)


async def test_missing_flag_bad_token_bad_key(
    client: httpx.AsyncClient, flags: None, service_key: dict[str, str]
) -> None:
    missing = await _one(client, "FF_NOPE", {"context": {}})
    assert missing.status_code == 404
    assert missing.json()["key"] == "FF_NOPE"
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    for headers in ({"Authorization": "Bearer not-a-token"}, {"X-API-Key": "wrong"}):
        for path in (ONE.format(key="FF_ON"), BULK):
            response = await client.post(path, json={"context": {}}, headers=headers)
            assert response.status_code == 401, (headers, path)
            assert set(response.json()) == {"errorCode", "errorDetails"}


async def test_no_service_key_is_accepted_while_none_is_set(
    client: httpx.AsyncClient, flags: None
) -> None:
    response = await client.post(BULK, json={"context": {}}, headers={"X-API-Key": ""})
    assert response.status_code == 401


async def test_bulk_lists_what_the_caller_may_see_with_an_etag_and_304(
    client: httpx.AsyncClient, dbs: Databases, flags: None
) -> None:
    anonymous = await client.post(BULK, json={"context": {}})
    assert anonymous.status_code == 200
    _check(BULK, anonymous)
    # Anonymous callers: only the flags on for everyone.
    assert {flag["key"] for flag in anonymous.json()["flags"]} == {
        "FF_ON", "FF_COLOUR", "FF_LIMIT", "FF_LAYOUT"
    }  # fmt: skip
    etag = anonymous.headers["etag"]
    unchanged = await client.post(BULK, json={"context": {}}, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    _check(BULK, unchanged)

    user = await make_user(dbs)
    mine = await client.post(BULK, json={"context": {}}, headers=auth_headers(user))
    _check(BULK, mine)
    assert len(mine.json()["flags"]) == len(flag_cache.rules)
    assert mine.headers["etag"] != etag

    flag_cache.update(["FF_OFF"], [FlagRule("FF_OFF", True)])  # a change reaches the cache
    changed = await client.post(BULK, json={"context": {}}, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert "FF_OFF" in {flag["key"] for flag in changed.json()["flags"]}


async def test_evaluations_do_no_database_work(app: FastAPI, flags: None) -> None:
    scopes: list[str] = []
    real: Database = app.state.database

    class CountedDatabase(Database):
        def request_scope(self, read_only: bool) -> RequestScope:
            scopes.append("read" if read_only else "write")
            return super().request_scope(read_only)

    app.state.database = CountedDatabase(real.engine)
    transport = httpx.ASGITransport(app=app)
    # A valid token of a user the database does not know: answered from the token.
    access = tokens.encode(TokenKind.ACCESS, uuid.uuid4(), {"email": "x@example.org", "ver": 0})
    token = {"Authorization": f"Bearer {access.token}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for headers in ({}, token):
                assert (await http.post(BULK, json={}, headers=headers)).status_code == 200
                one = await http.post(ONE.format(key="FF_ON"), json={}, headers=headers)
                assert one.status_code == 200
    finally:
        app.state.database = real
    assert scopes == []


async def test_not_loaded_yet_is_a_general_error(client: httpx.AsyncClient) -> None:
    saved = (flag_cache.rules, flag_cache.loaded)
    flag_cache.reset()
    try:
        response = await _one(client, "FF_ON", {"context": {}})
    finally:
        flag_cache.rules, flag_cache.loaded = saved
    assert response.status_code == 500
    assert response.json()["errorCode"] == "GENERAL"
