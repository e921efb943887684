"""Every HTTP endpoint of the feature flags app, over the rolled-back test transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.feature_flags.cache import FlagRule, flag_cache
from fastapi_server.apps.users import tokens
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.tokens import TokenKind
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database, RequestScope
from fastapi_server.tests.helpers.statements import recorded_statements
from fastapi_server.tests.helpers.users import auth_headers, make_user

NEW_FLAG = {"codename": "FF_NEW_CHECKOUT", "label": "New checkout", "description": "Beta."}
ACTORS = {"created_by", "updated_by"}  # superusers' emails: never in the public view


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> dict[str, Any]:
    response = await client.post("/feature-flags", json={**NEW_FLAG, **body}, headers=headers)
    assert response.status_code == 201, response.text
    flag: dict[str, Any] = response.json()
    return flag


async def test_list_is_open_to_anyone_and_ordered_by_codename(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    await db_session.execute(
        text(
            "INSERT INTO feature_flags (codename, label) "
            "VALUES ('zz.last', 'Last'), ('AA-first', 'First')"
        )
    )
    response = await client.get("/feature-flags")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    flags = response.json()
    codenames = [flag["codename"] for flag in flags]
    assert codenames == sorted(codenames)
    assert {"AA-first", "zz.last", "FF_ENABLE_REGISTRATION"} <= set(codenames)
    first = next(flag for flag in flags if flag["codename"] == "AA-first")
    assert first == {"codename": "AA-first", "label": "First", "is_active": False}


PUBLIC_KEYS = {"codename", "label", "is_active"}
TARGETING_KEYS = {"description", "user_ids", "rollout_percentage", "created_on", "updated_on"}
TARGETING_KEYS |= {"flag_type", "variants", "default_variant", "off_variant", "weights"}


@pytest.mark.parametrize(
    ("role", "keys"),
    [
        ("anonymous", PUBLIC_KEYS),
        ("user", PUBLIC_KEYS),
        ("listed_user", PUBLIC_KEYS),
        ("superuser", PUBLIC_KEYS | TARGETING_KEYS),
    ],
)
async def test_targeting_and_descriptions_are_for_superusers_only(
    client: httpx.AsyncClient,
    dbs: Databases,
    admin_headers: dict[str, str],
    role: str,
    keys: set[str],
) -> None:
    listed = await make_user(dbs, email="listed@example.org")
    await _create(
        client, admin_headers, user_ids=[str(listed.id)], rollout_percentage=5, is_active=True
    )
    headers = {
        "anonymous": {},
        "user": auth_headers(await make_user(dbs)),
        "listed_user": auth_headers(listed),
        "superuser": admin_headers,
    }[role]
    listed_flags = (await client.get("/feature-flags", headers=headers)).json()
    one = (await client.get("/feature-flags/FF_NEW_CHECKOUT", headers=headers)).json()
    for flag in [*listed_flags, one]:
        assert set(flag) == keys, role
    if keys == PUBLIC_KEYS:
        seen = str(listed_flags) + str(one)
        assert str(listed.id) not in seen
        assert "Beta." not in seen  # the description


async def test_a_bad_token_on_the_flag_reads_is_a_401(client: httpx.AsyncClient) -> None:
    for path in ("/feature-flags", "/feature-flags/FF_ENABLE_REGISTRATION"):
        response = await client.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code == 401, path
        assert response.json()["detail"]["code"] == "NOT_AUTHENTICATED"


async def test_anonymous_evaluate_lists_only_the_flags_it_gets(
    client: httpx.AsyncClient, dbs: Databases, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers, codename="FF_SECRET_OFF")
    await _create(
        client, admin_headers, codename="FF_PARTIAL", is_active=True, rollout_percentage=0
    )
    await _create(client, admin_headers, codename="FF_ALL_ON", is_active=True)
    # The cache follows rows only once committed (never, here): load it with the same flags.
    saved = flag_cache.rules
    flag_cache.update(
        [],
        [
            FlagRule("FF_SECRET_OFF", False),
            FlagRule("FF_PARTIAL", True, rollout_percentage=0),
            FlagRule("FF_ALL_ON", True),
        ],
    )
    try:
        anonymous = (await client.get("/feature-flags/evaluate")).json()
        user = (
            await client.get("/feature-flags/evaluate", headers=auth_headers(await make_user(dbs)))
        ).json()
    finally:
        flag_cache.rules = saved
    assert anonymous["FF_ALL_ON"] is True
    assert "FF_SECRET_OFF" not in anonymous
    assert "FF_PARTIAL" not in anonymous
    assert set(anonymous.values()) == {True}
    assert user["FF_SECRET_OFF"] is False  # a signed-in caller gets its own value of each
    assert user["FF_ALL_ON"] is True


async def test_public_reads_are_one_query_without_the_actors(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in ("/feature-flags", "/feature-flags/FF_ENABLE_REGISTRATION"):
            async with recorded_statements(app.state.database.engine) as recorded:
                assert (await http.get(path)).status_code == 200
            # not the background workers' statements (listener, delivery worker)
            statements = [s for s in recorded if "feature_flags" in s]
            assert len(statements) == 1, (path, statements)
            assert "created_by" not in statements[0]


async def test_get_one_flag_or_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/feature-flags/FF_ENABLE_REGISTRATION")
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    missing = await client.get("/feature-flags/FF_NOPE")
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "FEATURE_FLAG_NOT_FOUND"


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "é", "x" * 101])
async def test_bad_codename_in_the_path_is_a_clear_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], bad: str
) -> None:
    for method, path in [
        ("GET", f"/feature-flags/{bad}"),
        ("PATCH", f"/feature-flags/{bad}"),
        ("POST", f"/feature-flags/{bad}/toggle"),
        ("DELETE", f"/feature-flags/{bad}"),
        ("GET", f"/feature-flags/{bad}/history"),
    ]:
        json: dict[str, Any] | None = {} if method == "PATCH" else None
        response = await client.request(method, path, headers=admin_headers, json=json)
        assert response.status_code == 422, (method, path)
        error = response.json()["detail"]["errors"][0]
        assert error["loc"] == ["path", "codename"]
        assert "letter, a digit, '_', '-' or '.'" in error["msg"]


async def test_create_needs_a_superuser(client: httpx.AsyncClient, dbs: Databases) -> None:
    anonymous = await client.post("/feature-flags", json=NEW_FLAG)
    assert anonymous.status_code == 401
    plain = await make_user(dbs)
    forbidden = await client.post("/feature-flags", json=NEW_FLAG, headers=auth_headers(plain))
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"]["code"] == "NOT_SUPERUSER"
    assert (await client.get("/feature-flags/FF_NEW_CHECKOUT")).status_code == 404


async def test_create_defaults_to_off_and_records_the_admin(
    client: httpx.AsyncClient, admin: User, admin_headers: dict[str, str]
) -> None:
    flag = await _create(client, admin_headers)
    assert flag["codename"] == "FF_NEW_CHECKOUT"
    assert flag["label"] == "New checkout"
    assert flag["is_active"] is False
    assert flag["rollout_percentage"] == 100
    assert flag["user_ids"] == []
    assert flag["created_by"] == flag["updated_by"] == admin.email
    without_actors = {key: value for key, value in flag.items() if key not in ACTORS}
    read = await client.get("/feature-flags/FF_NEW_CHECKOUT", headers=admin_headers)
    assert read.json() == without_actors


async def test_anonymous_reads_do_not_show_who_changed_a_flag(
    client: httpx.AsyncClient, admin: User, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    await client.post("/feature-flags/FF_NEW_CHECKOUT/toggle", headers=admin_headers)
    for path in ("/feature-flags", "/feature-flags/FF_NEW_CHECKOUT"):
        for headers in ({}, admin_headers):  # the same public view, whoever asks
            response = await client.get(path, headers=headers)
            assert response.status_code == 200
            assert admin.email not in response.text, path
            body = response.json()
            flags = body if isinstance(body, list) else [body]
            assert "FF_NEW_CHECKOUT" in {flag["codename"] for flag in flags}
            assert all(ACTORS.isdisjoint(flag) for flag in flags), path
    # Superusers still see who did what, in the history.
    history = await client.get("/feature-flags/FF_NEW_CHECKOUT/history", headers=admin_headers)
    assert {row["actor"] for row in history.json()["results"]} == {admin.email}


async def test_create_with_targeting(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    someone = str(uuid.uuid4())
    flag = await _create(
        client, admin_headers, is_active=True, user_ids=[someone, someone], rollout_percentage=5
    )
    assert flag["is_active"] is True
    assert flag["user_ids"] == [someone]  # duplicates dropped
    assert flag["rollout_percentage"] == 5


async def test_create_twice_is_409(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    again = await client.post("/feature-flags", json=NEW_FLAG, headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["detail"]["code"] == "FEATURE_FLAG_ALREADY_EXISTS"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"codename": "bad name"}, "codename"),
        ({"codename": ""}, "codename"),
        ({"codename": "x" * 101}, "codename"),
        ({"codename": "FF_OK", "rollout_percentage": 101}, "rollout_percentage"),
        ({"codename": "FF_OK", "rollout_percentage": -1}, "rollout_percentage"),
        ({"codename": "FF_OK", "user_ids": ["not-a-uuid"]}, "user_ids"),
        ({"label": "no codename"}, "codename"),
    ],
)
async def test_create_rejects_bad_input_with_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/feature-flags", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"]["errors"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("label", "nul\x00byte", "must not contain control characters"),
        ("label", "escape \x1b[31m", "must not contain control characters"),
        ("label", "two\nlines", "must be a single line"),
        ("description", "nul\x00byte", "must not contain control characters"),
        ("description", "bell\x07", "must not contain control characters"),
    ],
)
async def test_control_characters_in_label_or_description_are_a_422(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    field: str,
    value: str,
    message: str,
) -> None:
    created = await client.post(
        "/feature-flags", json={**NEW_FLAG, field: value}, headers=admin_headers
    )
    assert created.status_code == 422
    assert created.json()["detail"]["errors"][0]["loc"] == ["body", field]
    assert message in created.json()["detail"]["errors"][0]["msg"]
    await _create(client, admin_headers)
    patched = await client.patch(
        "/feature-flags/FF_NEW_CHECKOUT", json={field: value}, headers=admin_headers
    )
    assert patched.status_code == 422
    assert patched.json()["detail"]["errors"][0]["loc"] == ["body", field]
    read = await client.get("/feature-flags/FF_NEW_CHECKOUT", headers=admin_headers)
    assert read.json()[field] == NEW_FLAG[field]


async def test_descriptions_may_have_several_lines_and_tabs(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    text_in = "First line.\r\n\tIndented second line, ünïcödé ✓."
    flag = await _create(client, admin_headers, description=text_in, label="Ünïcödé ✓")
    assert flag["description"] == text_in
    assert flag["label"] == "Ünïcödé ✓"


async def test_codename_error_says_what_is_allowed(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/feature-flags", json={"codename": "a/b"}, headers=admin_headers)
    message = response.json()["detail"]["errors"][0]["msg"]
    assert "1 to 100 characters, each a letter, a digit, '_', '-' or '.'" in message


@pytest.mark.parametrize("codename", ["evaluate", ".", ".."])
async def test_codenames_the_urls_cannot_reach_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], codename: str
) -> None:
    response = await client.post(
        "/feature-flags", json={"codename": codename}, headers=admin_headers
    )
    assert response.status_code == 422
    error = response.json()["detail"]["errors"][0]
    assert error["loc"] == ["body", "codename"]
    assert f"'{codename}' is reserved" in error["msg"]
    # Other spellings are ordinary codenames, reachable at their own URL.
    for reachable in ("Evaluate", "evaluate.v2"):
        await _create(client, admin_headers, codename=reachable)
        assert (await client.get(f"/feature-flags/{reachable}")).status_code == 200


async def test_evaluate_in_the_path_of_a_change_is_a_clear_refusal(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # /feature-flags/evaluate is only read: other methods are a 405 naming GET...
    for method in ("PATCH", "DELETE"):
        json = {"is_active": True} if method == "PATCH" else None
        refused = await client.request(
            method, "/feature-flags/evaluate", json=json, headers=admin_headers
        )
        assert refused.status_code == 405, method
        assert refused.headers["allow"] == "GET, HEAD"
    # ...and below it, "evaluate" is a reserved codename.
    for method, path in [
        ("POST", "/feature-flags/evaluate/toggle"),
        ("GET", "/feature-flags/evaluate/history"),
    ]:
        response = await client.request(method, path, headers=admin_headers)
        assert response.status_code == 422, (method, path)
        assert "'evaluate' is reserved" in response.json()["detail"]["errors"][0]["msg"]


async def test_patch_changes_only_what_is_sent(
    client: httpx.AsyncClient, dbs: Databases, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    other = await make_user(dbs, superuser=True)
    listed = str(uuid.uuid4())
    response = await client.patch(
        "/feature-flags/FF_NEW_CHECKOUT",
        json={"is_active": True, "user_ids": [listed], "rollout_percentage": 25},
        headers=auth_headers(other),
    )
    assert response.status_code == 200
    flag = response.json()
    assert flag["is_active"] is True
    assert flag["user_ids"] == [listed]
    assert flag["rollout_percentage"] == 25
    assert flag["label"] == "New checkout"  # untouched
    assert flag["description"] == "Beta."
    assert flag["updated_by"] == other.email
    assert flag["created_by"] == "flag-admin@example.org"

    relabelled = await client.patch(
        "/feature-flags/FF_NEW_CHECKOUT", json={"label": "Checkout v2"}, headers=admin_headers
    )
    assert relabelled.json()["label"] == "Checkout v2"
    assert relabelled.json()["is_active"] is True


async def test_patch_refuses_null_and_bad_values_and_missing_flags(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    for body in ({"label": None}, {"is_active": None}, {"rollout_percentage": 150}):
        response = await client.patch(
            "/feature-flags/FF_NEW_CHECKOUT", json=body, headers=admin_headers
        )
        assert response.status_code == 422, body
    missing = await client.patch(
        "/feature-flags/FF_NOPE", json={"is_active": True}, headers=admin_headers
    )
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "FEATURE_FLAG_NOT_FOUND"


async def test_patch_toggle_delete_history_need_a_superuser(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    plain = auth_headers(await make_user(dbs))
    calls = [
        ("PATCH", "/feature-flags/FF_ENABLE_REGISTRATION", {"is_active": False}),
        ("POST", "/feature-flags/FF_ENABLE_REGISTRATION/toggle", None),
        ("DELETE", "/feature-flags/FF_ENABLE_REGISTRATION", None),
        ("GET", "/feature-flags/FF_ENABLE_REGISTRATION/history", None),
    ]
    for method, path, json in calls:
        assert (await client.request(method, path, json=json)).status_code == 401
        forbidden = await client.request(method, path, json=json, headers=plain)
        assert forbidden.status_code == 403, (method, path)
    flag = (await client.get("/feature-flags/FF_ENABLE_REGISTRATION")).json()
    assert flag["is_active"] is True


async def test_toggle_flips_and_returns_the_flag(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    path = "/feature-flags/FF_ENABLE_REGISTRATION/toggle"
    off = await client.post(path, headers=admin_headers)
    assert off.status_code == 200
    assert off.json()["codename"] == "FF_ENABLE_REGISTRATION"
    assert off.json()["is_active"] is False
    on = await client.post(path, headers=admin_headers)
    assert on.json()["is_active"] is True
    missing = await client.post("/feature-flags/FF_NOPE/toggle", headers=admin_headers)
    assert missing.status_code == 404


async def test_delete_keeps_the_history(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    response = await client.delete("/feature-flags/FF_NEW_CHECKOUT", headers=admin_headers)
    assert response.status_code == 204
    assert (await client.get("/feature-flags/FF_NEW_CHECKOUT")).status_code == 404
    again = await client.delete("/feature-flags/FF_NEW_CHECKOUT", headers=admin_headers)
    assert again.status_code == 404
    history = await client.get("/feature-flags/FF_NEW_CHECKOUT/history", headers=admin_headers)
    assert [row["action"] for row in history.json()["results"]] == ["deleted", "created"]


async def test_history_is_newest_first_with_values_and_actors(
    client: httpx.AsyncClient, admin: User, admin_headers: dict[str, str]
) -> None:
    await _create(client, admin_headers)
    await client.post("/feature-flags/FF_NEW_CHECKOUT/toggle", headers=admin_headers)
    await client.patch(
        "/feature-flags/FF_NEW_CHECKOUT", json={"rollout_percentage": 10}, headers=admin_headers
    )
    response = await client.get("/feature-flags/FF_NEW_CHECKOUT/history", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["total"] == 3
    rows = response.json()["results"]
    assert [row["action"] for row in rows] == ["updated", "updated", "created"]
    assert {row["actor"] for row in rows} == {admin.email}
    assert rows[0]["old_values"]["rollout_percentage"] == 100
    assert rows[0]["new_values"]["rollout_percentage"] == 10
    assert rows[1]["old_values"]["is_active"] is False
    assert rows[1]["new_values"]["is_active"] is True
    assert rows[2]["old_values"] is None
    assert rows[2]["new_values"]["label"] == "New checkout"
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]

    oldest_first = await client.get(
        "/feature-flags/FF_NEW_CHECKOUT/history",
        params={"order_direction": "asc", "page_size": 5},
        headers=admin_headers,
    )
    assert [row["id"] for row in oldest_first.json()["results"]] == [r["id"] for r in rows[::-1]]
    beyond = await client.get(
        "/feature-flags/FF_NEW_CHECKOUT/history", params={"page": 2}, headers=admin_headers
    )
    assert beyond.json() == {"total": 3, "results": []}
    for params in ({"page_size": 3}, {"order_by": "actor"}, {"order_direction": "up"}):
        refused = await client.get(
            "/feature-flags/FF_NEW_CHECKOUT/history", params=params, headers=admin_headers
        )
        assert refused.status_code == 422, params


async def test_history_of_an_unknown_flag_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get("/feature-flags/FF_NEVER/history", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "FEATURE_FLAG_NOT_FOUND"


def _token(kind: TokenKind, *, issued_ago: timedelta = timedelta(0)) -> str:
    """A well-signed token of ``kind`` for a user who does not exist."""
    now = datetime.now(UTC) - issued_ago
    return tokens.encode(kind, uuid.uuid4(), {"email": "x@example.org", "ver": 0}, now=now).token


BAD_AUTHORIZATIONS: dict[str, Callable[[], str]] = {
    "malformed": lambda: "Bearer not-a-token",
    "expired": lambda: f"Bearer {_token(TokenKind.ACCESS, issued_ago=timedelta(days=30))}",
    "refresh-token": lambda: f"Bearer {_token(TokenKind.REFRESH)}",
    "verification-token": lambda: f"Bearer {_token(TokenKind.VERIFICATION)}",
    "not-bearer": lambda: "Basic dXNlcjpwYXNz",
    "bearer-without-token": lambda: "Bearer",
    "no-scheme": lambda: _token(TokenKind.ACCESS),
}


@pytest.mark.parametrize("kind", BAD_AUTHORIZATIONS)
async def test_evaluate_rejects_a_bad_token(client: httpx.AsyncClient, kind: str) -> None:
    headers = {"Authorization": BAD_AUTHORIZATIONS[kind]()}
    response = await client.get("/feature-flags/evaluate", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "NOT_AUTHENTICATED"


async def test_evaluate_documents_its_optional_bearer_token(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/feature-flags/evaluate"]["get"]
    assert operation["security"] == [{"OAuth2PasswordBearer": []}, {}]
    assert "OAuth2PasswordBearer" in schema["components"]["securitySchemes"]
    assert "401" in operation["responses"]


async def test_evaluate_does_no_database_work(app: FastAPI) -> None:
    scopes: list[str] = []
    real: Database = app.state.database

    class CountedDatabase(Database):
        def request_scope(self, read_only: bool) -> RequestScope:
            scopes.append("read" if read_only else "write")
            return super().request_scope(read_only)

    app.state.database = CountedDatabase(real.engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            anonymous = await http.get("/feature-flags/evaluate")
            # A valid token of a user the database does not know: answered from the token.
            token = {"Authorization": f"Bearer {_token(TokenKind.ACCESS)}"}
            signed_in = await http.get("/feature-flags/evaluate", headers=token)
            assert anonymous.status_code == signed_in.status_code == 200
            assert signed_in.json()["FF_ENABLE_REGISTRATION"] is True
            assert scopes == []
            assert (await http.get("/feature-flags")).status_code == 200
            assert scopes == ["read"]  # the probe sees a request that does query
    finally:
        app.state.database = real
