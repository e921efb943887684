"""Rate limits kept in PostgreSQL, failures that decay, a bounded hashing queue, and a
JWT secret rotated without logging anyone out."""

from __future__ import annotations

import httpx
import jwt
from sqlalchemy import text

from fastapi_server.apps.users import passwords
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.tokens import key_id
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.mail import outbox_for
from fastapi_server.tests.users.conftest import UsersEnv
from fastapi_server.tests.users.flows import bearer, detail, login

WRONG = "Wrong-Password-1"
NEW_PASSWORD = "Another-Strong-Pass-7"


def _assert_rate_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429
    assert detail(response)["code"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= window


async def test_one_client_ip_is_limited_whatever_it_claims_in_its_headers(
    client: httpx.AsyncClient, users_env: UsersEnv
) -> None:
    users_env(RATE_LIMIT_PER_IP="3")
    for number in range(3):
        body = {"email": f"someone{number}@example.org"}
        assert (await client.post("/auth/forgot-password", json=body)).status_code == 200
    spoofed = {"X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.7"}
    response = await client.post(
        "/auth/forgot-password", json={"email": "other@example.org"}, headers=spoofed
    )
    _assert_rate_limited(response, 60)
    # Another action has its own count.
    assert (await login(client, "nobody@example.org", WRONG)).status_code == 400


async def test_logins_are_limited_per_email(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RATE_LIMIT_LOGIN_PER_EMAIL="2", MAX_FAILED_LOGINS="100")
    for _ in range(2):
        assert (await login(client, "ada@example.org", WRONG)).status_code == 400
    _assert_rate_limited(await login(client, "ADA@example.org", WRONG), 60)
    assert (await login(client, "grace@example.org", WRONG)).status_code == 400  # not her


async def test_reset_emails_are_capped_per_address_and_answer_alike_for_unknown_ones(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    for email in ("ada@example.org", "nobody@example.org"):
        answers = [
            await client.post("/auth/forgot-password", json={"email": email}) for _ in range(6)
        ]
        assert [answer.status_code for answer in answers] == [200] * 5 + [429]
        _assert_rate_limited(answers[-1], 3600)
    assert len(await outbox_for(dbs, "ada@example.org")) == 5


async def test_failures_decay_so_a_trickle_cannot_keep_an_account_locked(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    ada_id = ada.id
    for _ in range(4):
        await login(client, "ada@example.org", WRONG)
    await dbs.session.execute(
        text("UPDATE users SET login_failed_on = now() - interval '1 hour' WHERE id = :id"),
        {"id": ada_id},
    )
    await dbs.session.commit()
    await login(client, "ada@example.org", WRONG)  # the fifth, but an hour later
    user = await dbs.users.get(ada_id)
    assert user is not None
    assert (user.login_failed_count, user.locked_until) == (1, None)
    assert (await login(client, "ada@example.org")).status_code == 200


async def test_a_password_reset_unlocks_a_locked_account(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    for _ in range(5):
        await login(client, "ada@example.org", WRONG)
    locked = await login(client, "ada@example.org")
    assert detail(locked)["code"] == "LOGIN_USER_LOCKED"
    assert int(locked.headers["Retry-After"]) == detail(locked)["retry_after"]
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    token = forgot.json()["forgot_password_token"]
    body = {"email": "ada@example.org", "token": token, "password": NEW_PASSWORD}
    assert (await client.post("/auth/reset-password", json=body)).status_code == 200
    assert (await login(client, "ada@example.org", NEW_PASSWORD)).status_code == 200


async def test_a_login_waits_a_bounded_time_for_a_hashing_turn(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(HASHING_THREADS="1", HASHING_QUEUE_TIMEOUT_SECONDS="0.2")
    async with passwords.hashing_turn():  # every turn taken
        busy = await login(client, "ada@example.org")
    assert busy.status_code == 503
    assert detail(busy)["code"] == "HASHING_BUSY"
    assert int(busy.headers["Retry-After"]) >= 1
    assert (await login(client, "ada@example.org")).status_code == 200


async def test_ended_windows_are_purged(dbs: Databases) -> None:
    window = 1
    hits = await dbs.rate_limits.hit({"test:a": window, "test:b": 3600})
    assert {key: hit.hits for key, hit in hits.items()} == {"test:a": 1, "test:b": 1}
    await dbs.session.execute(
        text(
            "UPDATE rate_limit_counters SET window_end = now() - interval '1 second' "
            "WHERE key = 'test:a'"
        )
    )
    assert await dbs.rate_limits.purge() == 1
    again = await dbs.rate_limits.hit({"test:a": window, "test:b": 3600})
    assert {key: hit.hits for key, hit in again.items()} == {"test:a": 1, "test:b": 2}


async def test_a_rotated_jwt_secret_logs_nobody_out_while_it_is_the_previous_one(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    old, new = "o" * 40, "n" * 40
    users_env(JWT_SECRET=old)
    pair = (await login(client, "ada@example.org")).json()
    users_env(JWT_SECRET=new, JWT_SECRET_PREVIOUS=old)  # rotated
    me = await client.get("/users/user", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    refreshed = await client.post("/auth/refresh-tokens", json={"token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == key_id(new)
    users_env(JWT_SECRET_PREVIOUS="")  # the previous secret retired: its tokens die
    gone = await client.get("/users/user", headers=bearer(pair["access_token"]))
    assert gone.status_code == 401
