"""Behaviour that needs real commits: concurrent requests, the registration flag."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.apps.feature_flags import core as flags
from fastapi_server.apps.feature_flags.schemas import FeatureFlagUpdate
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.users import core
from fastapi_server.apps.users.errors import NotAuthenticated
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.statements import recorded_statements
from fastapi_server.tests.helpers.users import STRONG_PASSWORD, auth_headers, make_user
from fastapi_server.tests.helpers.waiting import eventually
from fastapi_server.tests.users.conftest import UsersEnv
from fastapi_server.tests.users.flows import detail, login, register, tokens_for

FLAG = "FF_ENABLE_REGISTRATION"
WRONG = "Wrong-Password-1"
ACTOR = "test:users"


async def test_concurrent_registrations_of_one_email_leave_one_row(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    emails = ["race@example.org", "RACE@example.org", "Race@Example.org", "race@EXAMPLE.org"] * 2
    responses = await asyncio.gather(*(register(committed_client, email) for email in emails))
    assert [response.status_code for response in responses] == [201] * len(emails)
    assert len({response.json()["id"] for response in responses}) == 1
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM users WHERE lower(email) = 'race@example.org'")
        )
    assert count == 1


async def test_the_database_itself_refuses_a_second_email_differing_in_case(
    engine: AsyncEngine, clean_database: str
) -> None:
    async with engine.begin() as conn:
        insert = text(
            "INSERT INTO users (email, first_name, last_name, hashed_password) "
            "VALUES (:email, 'A', 'B', 'x')"
        )
        await conn.execute(insert, {"email": "psql@example.org"})
        with pytest.raises(Exception, match="uq_users_email_lower"):
            await conn.execute(insert, {"email": "PSQL@example.org"})


async def test_a_login_is_three_round_trips_on_the_users_tables(
    app: FastAPI, committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        await make_user(Databases(session), email="ada@example.org")
    async with recorded_statements(app.state.database.engine) as recorded:
        assert (await login(committed_client, "Ada@example.org")).status_code == 200
    # not the background workers' statements (listener, delivery worker)
    ours = [s for s in recorded if re.search(r"\b(users|user_refresh_tokens)\b", s)]
    assert len(ours) == 3, ours
    lookup, bookkeeping, token = ours
    assert "now()" in lookup  # the clock comes with the row
    assert "FOR UPDATE" in lookup
    assert "UPDATE users" in bookkeeping
    assert "DELETE FROM user_refresh_tokens" in token  # housekeeping rides on the insert
    assert "INSERT INTO user_refresh_tokens" in token


async def test_a_refresh_while_a_login_of_the_same_user_holds_its_row_does_not_deadlock(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    database = Database(engine)
    async with database.transaction() as session:
        ada = await make_user(Databases(session), email="ada@example.org")
    pair = await tokens_for(committed_client, "ada@example.org")  # another device's login
    async with engine.begin() as conn:  # a token of that user that expired two days ago
        await conn.execute(
            text(
                "INSERT INTO user_refresh_tokens (jti, user_id, family_id, expires_on) "
                "VALUES (gen_random_uuid(), :id, gen_random_uuid(), now() - interval '2 days')"
            ),
            {"id": ada.id},
        )

    async def rotate() -> core.TokenPair:
        async with database.transaction() as session:
            return await core.refresh_tokens(Databases(session), pair["refresh_token"])

    # A login, step by step as core.login takes them: the user's row locked first...
    async with database.transaction() as session:
        logging_in = Databases(session)
        assert await logging_in.users.get_by_email_locked("ada@example.org") is not None
        rotation = asyncio.create_task(rotate())  # ...a refresh meanwhile waits for that row
        await asyncio.sleep(0.3)
        assert not rotation.done()
        await logging_in.users.add_refresh_token(  # ...then the login's token and housekeeping
            jti=uuid.uuid4(),
            user_id=ada.id,
            family_id=uuid.uuid4(),
            expires_on=datetime.now(UTC) + timedelta(days=1),
            drop_expired=True,
        )
    assert (await asyncio.wait_for(rotation, timeout=10)).refresh_token  # no deadlock: both done
    async with engine.connect() as conn:
        expired = await conn.scalar(
            text("SELECT count(*) FROM user_refresh_tokens WHERE expires_on < now()")
        )
    assert expired == 0


async def test_concurrent_refreshes_of_one_token_rotate_it_once(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        await make_user(Databases(session), email="twice@example.org")
    pair = await tokens_for(committed_client, "twice@example.org")
    body = {"token": pair["refresh_token"]}
    responses = await asyncio.gather(
        *(committed_client.post("/auth/refresh-tokens", json=body) for _ in range(2))
    )
    assert sorted(response.status_code for response in responses) == [200, 400]


async def test_the_get_endpoints_answer_on_the_read_only_session(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        admin = await make_user(Databases(session), email="admin@example.org", superuser=True)
    headers = auth_headers(admin)
    for path in ("/users/user", "/users", "/_authenticated"):
        response = await committed_client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
    assert (await committed_client.get("/users", headers=headers)).json()["total"] == 1


async def test_a_get_refuses_a_token_at_once_after_logout_or_deactivation(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        ada = await make_user(Databases(session), email="ada@example.org")
        bob = await make_user(Databases(session), email="bob@example.org")
    ada_headers, bob_headers = auth_headers(ada), auth_headers(bob)
    me = await committed_client.get("/users/user", headers=ada_headers)
    assert me.status_code == 200
    assert me.json()["id"] == str(ada.id)
    assert me.json()["email"] == "ada@example.org"

    assert (await committed_client.post("/auth/logout", headers=ada_headers)).status_code == 200
    after_logout = await committed_client.get("/users/user", headers=ada_headers)
    assert after_logout.status_code == 401

    assert (await committed_client.get("/users/user", headers=bob_headers)).status_code == 200
    async with engine.begin() as conn:  # as a psql administrator would
        await conn.execute(
            text("UPDATE users SET is_active = false WHERE id = :id"), {"id": bob.id}
        )
    deactivated = await committed_client.get("/users/user", headers=bob_headers)
    assert deactivated.status_code == 401
    assert deactivated.json()["detail"]["code"] == "NOT_AUTHENTICATED"


# --- bursts of logins -----------------------------------------------------------------


@pytest.fixture
async def small_pool_client(
    settings: Settings, clean_database: str, users_env: UsersEnv
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a tiny pool, a short pool timeout, one hashing thread and a hash cost
    that makes 20 logins queue for longer than that timeout (no email worker on the pool)."""
    users_env(HASHING_THREADS="1", ARGON2_MEMORY_KIB="8192", ARGON2_TIME_COST="4")
    small = settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 0.5}
    )
    app = create_app(small)
    app.state.notifications_settings = NotificationsSettings(worker_in_process=False)
    async with app.router.lifespan_context(app):
        # A crash answers 500 here, as it would to a real client.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_a_burst_of_logins_leaves_the_pool_to_other_requests(
    small_pool_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        ada = await make_user(Databases(session), email="ada@example.org")
    logins = [
        login(small_pool_client, f"nobody-{number}@example.org", WRONG) for number in range(20)
    ]
    burst = asyncio.gather(*logins)
    await asyncio.sleep(0.05)  # the logins have taken what they take of the pool
    me = await small_pool_client.get("/users/user", headers=auth_headers(ada))
    assert me.status_code == 200, me.text
    statuses = [response.status_code for response in await burst]
    assert statuses == [400] * 20


async def test_concurrent_wrong_passwords_get_no_more_tries_than_the_lockout_allows(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with Database(engine).transaction() as session:
        await make_user(Databases(session), email="ada@example.org")
    allowed = get_users_settings().max_failed_logins
    attempts = [login(committed_client, "ada@example.org", WRONG) for _ in range(allowed + 7)]
    responses = await asyncio.gather(*attempts)
    codes = sorted(detail(response)["code"] for response in responses)
    assert codes == ["LOGIN_BAD_CREDENTIALS"] * allowed + ["LOGIN_USER_LOCKED"] * 7
    async with engine.connect() as conn:
        failures = await conn.scalar(
            text("SELECT login_failed_count FROM users WHERE email = 'ada@example.org'")
        )
    assert failures == allowed


async def test_a_login_that_slips_in_before_a_logout_writes_is_logged_out_too(
    engine: AsyncEngine, clean_database: str
) -> None:
    database = Database(engine)
    async with database.transaction() as session:
        ada = await make_user(Databases(session), email="ada@example.org")
    token = core.access_token(ada).token
    async with database.transaction() as slow:
        caller = await core.user_from_access_token(Databases(slow), token)
        # Meanwhile another device logs out, and a login starts a new session.
        async with database.transaction() as session:
            other_device = await core.user_from_access_token(Databases(session), token)
            await core.logout(Databases(session), other_device)
        async with database.transaction() as session:
            pair = await core.login(Databases(session), email=ada.email, password=STRONG_PASSWORD)
        await core.logout(Databases(slow), caller)
    async with database.transaction() as session:
        with pytest.raises(NotAuthenticated):
            await core.user_from_access_token(Databases(session), pair.access_token)


# --- registration behind FF_ENABLE_REGISTRATION ----------------------------------------


async def _in_transaction(
    engine: AsyncEngine, change: Callable[[Databases], Awaitable[None]]
) -> None:
    async with Database(engine).transaction() as session:
        await change(Databases(session))


async def _flag_state() -> str:
    on_if_missing = await flags.is_enabled(FLAG, default_if_missing=True)
    off_if_missing = await flags.is_enabled(FLAG, default_if_missing=False)
    if on_if_missing != off_if_missing:
        return "absent"
    return "on" if on_if_missing else "off"


@pytest.fixture
async def registration_flag(
    engine: AsyncEngine, clean_database: str, app: object
) -> AsyncIterator[None]:
    """Lets a test change the flag for real; puts the seeded flag back (and waits) after."""
    yield
    async with Database(engine).transaction() as session:
        dbs = Databases(session)
        if await dbs.feature_flags.get(FLAG) is None:
            await flags.seed_default_flags(dbs)
        else:
            await flags.update_flag(dbs, FLAG, FeatureFlagUpdate(is_active=True), actor=ACTOR)

    async def back_on() -> bool:
        return await _flag_state() == "on"

    await eventually(back_on, what="the flags cache to follow the change")


@pytest.mark.usefixtures("registration_flag")
async def test_registration_answers_404_while_the_flag_is_off(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert (await register(committed_client, "before@example.org")).status_code == 201

    async def switch_off(dbs: Databases) -> None:
        await flags.update_flag(dbs, FLAG, FeatureFlagUpdate(is_active=False), actor=ACTOR)

    async def is_off() -> bool:
        return await _flag_state() == "off"

    await _in_transaction(engine, switch_off)
    await eventually(is_off, what="the flags cache to follow the change")
    response = await register(committed_client, "during@example.org")
    assert response.status_code == 404
    assert detail(response)["code"] == "FEATURE_DISABLED"


@pytest.mark.usefixtures("registration_flag")
async def test_registration_without_the_flag_follows_the_setting(
    committed_client: httpx.AsyncClient, engine: AsyncEngine, users_env: UsersEnv
) -> None:
    async def delete(dbs: Databases) -> None:
        await flags.delete_flag(dbs, FLAG, actor=ACTOR)

    async def is_absent() -> bool:
        return await _flag_state() == "absent"

    await _in_transaction(engine, delete)
    await eventually(is_absent, what="the flags cache to follow the change")
    assert get_users_settings().registration_default is True
    assert (await register(committed_client, "open@example.org")).status_code == 201

    users_env(REGISTRATION_DEFAULT="false")
    response = await register(committed_client, "closed@example.org")
    assert response.status_code == 404
    assert detail(response)["code"] == "FEATURE_DISABLED"
