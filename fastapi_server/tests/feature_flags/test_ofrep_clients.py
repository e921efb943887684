"""The official OpenFeature Python SDK with the official OFREP provider, against the API
served by a real uvicorn: every flag type, anonymously, as a user and as a service."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.users import tokens
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.tokens import TokenKind
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.feature_flags.ofrep import validate
from fastapi_server.tests.helpers.processes import LiveServer
from fastapi_server.tests.helpers.users import auth_headers, make_user
from fastapi_server.tests.helpers.waiting import eventually

SERVICE_KEY = "another-long-random-service-key-for-the-sdk-tests-42"
FLAGS = [  # codename, is_active, flag_type, variants, default, off
    ("FF_STRING", True, "string", {"blue": "#00f", "red": "#f00"}, "blue", "red"),
    ("FF_INTEGER", True, "integer", {"few": 3, "many": 30}, "many", "few"),
    ("FF_FLOAT", True, "float", {"half": 0.5, "two": 2}, "two", "half"),
    ("FF_OBJECT", True, "object", {"grid": {"columns": 3}, "list": {}}, "grid", "list"),
    ("FF_INACTIVE", False, "string", {"new": "new", "old": "old"}, "new", "old"),
]
# (method, default, expected value, expected variant, expected reason)
EXPECTED: dict[str, tuple[str, Any, Any, str, str]] = {
    "FF_BOOLEAN": ("get_boolean_details", False, True, "on", "STATIC"),
    "FF_STRING": ("get_string_details", "#000", "#00f", "blue", "STATIC"),
    "FF_INTEGER": ("get_integer_details", 0, 30, "many", "STATIC"),
    "FF_FLOAT": ("get_float_details", 0.0, 2.0, "two", "STATIC"),
    "FF_OBJECT": ("get_object_details", {}, {"columns": 3}, "grid", "STATIC"),
    "FF_INACTIVE": ("get_string_details", "code", "old", "old", "DISABLED"),
}


@pytest.fixture
async def psql(clean_database: str) -> Any:
    """A plain autocommit connection, like psql's, with the typed flags inserted."""
    connection = await asyncpg.connect(to_asyncpg_dsn(clean_database))
    await connection.execute(
        "INSERT INTO feature_flags (codename, is_active) VALUES ('FF_BOOLEAN', true)"
    )
    for codename, active, flag_type, variants, default, off in FLAGS:
        await connection.execute(
            "INSERT INTO feature_flags (codename, is_active, flag_type, variants, "
            "default_variant, off_variant) VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
            codename, active, flag_type, json.dumps(variants), default, off,
        )  # fmt: skip
    await connection.execute(
        "INSERT INTO feature_flags (codename, is_active, rollout_percentage) "
        "VALUES ('FF_LISTED', true, 0)"
    )
    yield connection
    await connection.close()


@pytest.fixture
def server(psql: Any) -> Iterator[LiveServer]:
    live = LiveServer({"FEATURE_FLAGS_OFREP_API_KEY": SERVICE_KEY})
    yield live
    live.stop()


@pytest.fixture
async def user(engine: AsyncEngine, clean_database: str) -> User:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        return await make_user(Databases(session), email="sdk-user@example.org")


def _client(server: LiveServer, name: str, headers: dict[str, str]) -> OpenFeatureClient:
    """An OpenFeature client whose domain uses the OFREP provider with these headers."""
    provider = OFREPProvider(server.url, headers_factory=lambda: dict(headers))
    api.set_provider(provider, domain=name)
    return api.get_client(name)


async def _details(
    client: OpenFeatureClient, codename: str, context: EvaluationContext | None = None
) -> FlagEvaluationDetails[Any]:
    method, default = EXPECTED.get(codename, ("get_boolean_details", False))[:2]
    evaluate: Callable[..., FlagEvaluationDetails[Any]] = getattr(client, method)
    return await asyncio.to_thread(evaluate, codename, default, context)


async def test_the_official_client_against_the_served_api(
    server: LiveServer, user: User, psql: Any
) -> None:
    # One server for every check: starting uvicorn is most of this test's time.
    await _every_type_for_each_caller(server, user)
    await _whose_context(server, user, psql)
    await _a_psql_toggle_reaches_the_next_evaluation_and_the_bulk_etag(server, psql)


async def _every_type_for_each_caller(server: LiveServer, user: User) -> None:
    callers = {
        "anonymous": {},
        "user": auth_headers(user),
        "service": {"X-API-Key": SERVICE_KEY},
    }
    for who, headers in callers.items():
        client = _client(server, f"ofrep-{who}", headers)
        context = EvaluationContext(targeting_key=str(user.id)) if who != "anonymous" else None
        for codename, (_, _, value, variant, reason) in EXPECTED.items():
            details = await _details(client, codename, context)
            assert details.error_code is None, (who, codename, details.error_message)
            got = (details.value, details.variant, details.reason)
            assert got == (value, variant, reason), (who, codename)
            assert type(details.value) is type(value)
        missing = await asyncio.to_thread(client.get_string_details, "FF_MISSING", "code default")
        assert missing.value == "code default", who
        assert missing.error_code == ErrorCode.FLAG_NOT_FOUND


async def _whose_context(server: LiveServer, user: User, psql: Any) -> None:
    await psql.execute(
        "UPDATE feature_flags SET user_ids = ARRAY[$1::uuid] WHERE codename = 'FF_LISTED'",
        user.id,
    )
    as_user = EvaluationContext(targeting_key=str(user.id))

    async def listed(client: OpenFeatureClient) -> bool:
        return bool((await _details(client, "FF_LISTED", as_user)).value)

    service = _client(server, "ofrep-service-ctx", {"X-API-Key": SERVICE_KEY})
    await eventually(lambda: listed(service), within=1.0, what="the listed user")
    assert (await _details(service, "FF_LISTED", as_user)).reason == "TARGETING_MATCH"
    assert await listed(_client(server, "ofrep-user-ctx", auth_headers(user))) is True
    # Anyone else naming that user is evaluated as themselves: the key is ignored.
    assert await listed(_client(server, "ofrep-anonymous-ctx", {})) is False
    assert await listed(_client(server, "ofrep-other-ctx", _token_of_someone_else())) is False


def _token_of_someone_else() -> dict[str, str]:
    """A valid access token of another, unlisted user id."""
    issued = tokens.encode(TokenKind.ACCESS, uuid.uuid4(), {"email": "x@example.org", "ver": 0})
    return {"Authorization": f"Bearer {issued.token}"}


async def _a_psql_toggle_reaches_the_next_evaluation_and_the_bulk_etag(
    server: LiveServer, psql: Any
) -> None:
    client = _client(server, "ofrep-toggle", {})
    async with httpx.AsyncClient(base_url=server.url) as http:
        before = await http.post("/ofrep/v1/evaluate/flags", json={"context": {}})
        assert before.status_code == 200
        validate("bulkEvaluationSuccess", before.json())
        etag = before.headers["etag"]
        assert (await _details(client, "FF_BOOLEAN")).value is True

        await psql.execute(
            "UPDATE feature_flags SET is_active = false WHERE codename = 'FF_BOOLEAN'"
        )

        async def off() -> bool:
            return (await _details(client, "FF_BOOLEAN")).value is False

        await eventually(off, within=1.0, what="the toggle to reach the OFREP client")
        details = await _details(client, "FF_BOOLEAN")
        assert (details.variant, details.reason) == ("off", "DISABLED")
        after = await http.post(
            "/ofrep/v1/evaluate/flags", json={"context": {}}, headers={"If-None-Match": etag}
        )
        assert after.status_code == 200
        assert after.headers["etag"] != etag
        validate("bulkEvaluationSuccess", after.json())
        same = await http.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {}},
            headers={"If-None-Match": after.headers["etag"]},
        )
        assert same.status_code == 304
