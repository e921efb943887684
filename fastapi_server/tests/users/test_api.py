"""Every row of the HTTP contract, over HTTP, in a rolled-back transaction."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import text

from fastapi_server.apps.notifications import core as notifications
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.passwords import verify_password_sync
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.mail import outbox_for
from fastapi_server.tests.helpers.users import STRONG_PASSWORD, auth_headers, make_user
from fastapi_server.tests.users.conftest import UsersEnv
from fastapi_server.tests.users.flows import (
    bearer,
    claims,
    detail,
    login,
    register,
    request_code,
    tokens_for,
    verify,
)

NEW_PASSWORD = "Another-Strong-Pass-7"


# --- POST /register -------------------------------------------------------------------


async def test_register_creates_an_unverified_user(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    response = await register(client, "grace@example.org", first_name="Grace", last_name="Hopper")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "first_name", "last_name"}
    assert body["email"] == "grace@example.org"
    assert (body["first_name"], body["last_name"]) == ("Grace", "Hopper")
    user = await dbs.users.get(uuid.UUID(body["id"]))
    assert user is not None
    assert user.is_active
    assert not user.is_verified
    assert not user.is_superuser
    assert user.hashed_password.startswith("$argon2id$")
    assert STRONG_PASSWORD not in user.hashed_password


async def test_register_again_while_unverified_changes_nothing(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    first = await register(client, "grace@example.org", first_name="Grace")
    again = await register(
        client, "GRACE@example.org", password=NEW_PASSWORD, first_name="Amazing", last_name="G"
    )
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]  # as a first registration answers
    user = await dbs.users.get_by_email("grace@example.org")
    assert user is not None
    assert (str(user.id), user.first_name) == (first.json()["id"], "Grace")
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)[0]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Ab1!xyz", "TOO_SHORT"),
        ("Ab1!" + "x" * 125, "TOO_LONG"),
        ("lower-case-only-1", "NO_UPPERCASE"),
        ("UPPER-CASE-ONLY-1", "NO_LOWERCASE"),
        ("No-Digits-Here", "NO_NUMBER"),
        ("NoSpecialChars123", "NO_SPECIAL_CHAR"),
        ("Password123!", "TOO_COMMON"),
        ("P@ssw0rd", "TOO_COMMON"),
        ("Summer2024!", "TOO_COMMON"),
    ],
)
async def test_register_rejects_weak_passwords_with_a_reason(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    response = await register(client, "weak@example.org", password=password)
    assert response.status_code == 400
    assert detail(response)["code"] == "REGISTER_INVALID_PASSWORD"
    assert detail(response)["reason"] == reason


async def test_register_accepts_128_characters_and_stores_them_all(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    password = "Ab1!" + "x" * 124
    assert (await register(client, "long@example.org", password=password)).status_code == 201
    user = await dbs.users.get_by_email("long@example.org")
    assert user is not None
    assert verify_password_sync(password, user.hashed_password)[0]
    assert not verify_password_sync(password[:72], user.hashed_password)[0]  # never truncated


async def test_register_validates_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/register", json={"email": "not-an-email", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 422


# --- POST /auth/request-verification-token and /auth/verify ---------------------------


async def test_verification_code_is_emailed_not_returned_by_default(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await register(client, "grace@example.org", first_name="Grace")
    response = await client.post(
        "/auth/request-verification-token", json={"email": "grace@example.org"}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"verification_token"}
    [mail] = await outbox_for(dbs, "grace@example.org")
    assert mail.template == "registration_code"
    assert "Grace" not in mail.body_text  # typed by the registrant, maybe not the owner
    assert re.search(r"\b\d{6}\b", mail.body_text)


async def test_verify_with_the_emailed_code_then_login(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await register(client, "grace@example.org", first_name="Grace")
    response = await client.post(
        "/auth/request-verification-token", json={"email": "grace@example.org"}
    )
    token = response.json()["verification_token"]
    [mail] = await outbox_for(dbs, "grace@example.org")
    match = re.search(r"\b(\d{6})\b", mail.body_text)
    assert match is not None
    code = match.group(1)
    assert code not in token
    assert code not in str(claims(token))

    assert (await login(client, "grace@example.org")).status_code == 400  # not verified yet
    verified = await verify(client, token, code)
    assert verified.status_code == 200
    assert verified.json() == {"verified": True}
    user = await dbs.users.get_by_email("grace@example.org")
    assert user is not None
    assert user.is_verified
    assert user.verified_on is not None
    templates = [m.template for m in await outbox_for(dbs, "grace@example.org")]
    assert templates == ["registration_code", "welcome"]
    assert (await login(client, "grace@example.org")).status_code == 200


async def test_dev_switch_returns_the_code_too(
    client: httpx.AsyncClient, dbs: Databases, users_env: UsersEnv
) -> None:
    users_env(RETURN_VERIFICATION_TOKENS="1")
    await register(client, "grace@example.org")
    token, code = await request_code(client, "grace@example.org")
    assert re.fullmatch(r"\d{6}", code)
    [mail] = await outbox_for(dbs, "grace@example.org")
    assert code in mail.body_text
    assert (await verify(client, token, code)).status_code == 200


async def test_verify_with_a_wrong_code_is_400(
    client: httpx.AsyncClient, users_env: UsersEnv
) -> None:
    users_env(RETURN_VERIFICATION_TOKENS="1")
    await register(client, "grace@example.org")
    token, code = await request_code(client, "grace@example.org")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = await verify(client, token, wrong)
    assert response.status_code == 400
    assert detail(response)["code"] == "VERIFY_USER_BAD_TOKEN"
    assert detail(response)["reason"] == "WRONG_CODE"
    garbage = await verify(client, "not-a-token", code)
    assert garbage.status_code == 400
    assert detail(garbage)["code"] == "VERIFY_USER_BAD_TOKEN"


async def test_a_non_ascii_domain_in_any_case_registers_verifies_and_logs_in(
    client: httpx.AsyncClient, dbs: Databases, users_env: UsersEnv
) -> None:
    users_env(RETURN_VERIFICATION_TOKENS="1")
    registered = await register(client, "Ada@BÜCHER.example")
    assert registered.status_code == 201
    assert registered.json()["email"] == "Ada@bücher.example"  # the domain is lowercased
    token, code = await request_code(client, "ADA@Bücher.EXAMPLE")
    [mail] = await outbox_for(dbs, "ada@bücher.example")
    assert code in mail.body_text
    assert (await verify(client, token, code)).status_code == 200
    assert (await login(client, "ada@BÜCHER.example")).status_code == 200


async def test_an_email_with_non_ascii_capitals_finds_its_account(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    # PostgreSQL's lower() folds ASCII only under locale C, Python's folds everything:
    # both sides of the comparison are folded by the database, as in the unique index.
    user = await make_user(dbs, email="Ünïcode@example.org")  # e.g. imported from psql
    await dbs.session.commit()
    assert (await login(client, "Ünïcode@example.org")).status_code == 200
    assert (await login(client, "ÜNÏCODE@example.org")).status_code == 400  # not ASCII case
    found = await dbs.users.get_by_email("Ünïcode@EXAMPLE.org")
    assert found is not None
    assert found.id == user.id
    # Email cannot reach it (non-ASCII before the @): the answer stays the same, no 500.
    forgot = await client.post("/auth/forgot-password", json={"email": "Ünïcode@example.org"})
    assert forgot.json() == {"token_sent": True}
    assert await outbox_for(dbs, "Ünïcode@example.org") == []


async def test_an_outbox_address_with_non_ascii_capitals_finds_its_messages(
    dbs: Databases,
) -> None:
    context = {"first_name": "Ada"}
    await notifications.enqueue(
        dbs, template="password_changed", to_email="Ada@BÜCHER.example", context=context
    )
    [mail] = await outbox_for(dbs, "ada@BÜCHER.example")
    assert mail.template == "password_changed"


async def test_register_refuses_an_address_email_cannot_reach(client: httpx.AsyncClient) -> None:
    response = await register(client, "Ünïcode@example.org")
    assert response.status_code == 400
    assert detail(response)["code"] == "REGISTER_INVALID_EMAIL"


# --- POST /login and /users/login -----------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/users/login"])
async def test_login_answers_the_token_pair(
    client: httpx.AsyncClient, ada: User, dbs: Databases, path: str
) -> None:
    response = await login(client, "Ada@Example.org", path=path)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "access_token_expiration",
        "refresh_token_expiration",
    }
    assert body["token_type"] == "bearer"
    assert body["access_token_expiration"] == 900
    assert body["refresh_token_expiration"] == 14 * 24 * 3600
    payload = claims(body["access_token"])
    assert payload["user_id"] == str(ada.id)
    assert payload["email"] == "ada@example.org"
    assert payload["first_name"] == "Ada"
    assert payload["exp"] - payload["iat"] == 900
    user = await dbs.users.get(ada.id)
    assert user is not None
    assert user.last_login is not None


async def test_login_with_a_wrong_password_is_bad_credentials(
    client: httpx.AsyncClient, ada: User
) -> None:
    response = await login(client, "ada@example.org", "Wrong-Password-1")
    assert response.status_code == 400
    assert detail(response)["code"] == "LOGIN_BAD_CREDENTIALS"


async def test_login_of_an_unverified_user_says_so(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await make_user(dbs, email="new@example.org", verified=False)
    await dbs.session.commit()
    response = await login(client, "new@example.org")
    assert response.status_code == 400
    assert detail(response)["code"] == "LOGIN_USER_NOT_VERIFIED"
    wrong = await login(client, "new@example.org", "Wrong-Password-1")
    assert detail(wrong)["code"] == "LOGIN_BAD_CREDENTIALS"  # only the right password tells


async def test_login_of_an_inactive_user_is_bad_credentials(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await make_user(dbs, email="gone@example.org", active=False)
    await dbs.session.commit()
    response = await login(client, "gone@example.org")
    assert response.status_code == 400
    assert detail(response)["code"] == "LOGIN_BAD_CREDENTIALS"


# --- POST /auth/refresh-tokens and /auth/logout ---------------------------------------


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, ada: User) -> None:
    first = await tokens_for(client, "ada@example.org")
    response = await client.post("/auth/refresh-tokens", json={"token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert set(second) == set(first)
    assert second["token_type"] == "bearer"
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/users/user", headers=bearer(second["access_token"]))
    assert me.json()["id"] == str(ada.id)
    again = await client.post("/auth/refresh-tokens", json={"token": second["refresh_token"]})
    assert again.status_code == 200


async def test_a_login_drops_the_users_refresh_tokens_that_expired_a_day_ago(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    bob = await make_user(dbs, email="bob@example.org")
    expired = {"ada, 2 days": (ada, 48), "ada, 12 hours": (ada, 12), "bob, 2 days": (bob, 48)}
    for name, (owner, hours) in expired.items():
        await dbs.session.execute(
            text(
                "INSERT INTO user_refresh_tokens (jti, user_id, family_id, expires_on) "
                "VALUES (:jti, :user_id, :jti, now() - make_interval(hours => :hours))"
            ),
            {"jti": uuid.uuid5(uuid.NAMESPACE_URL, name), "user_id": owner.id, "hours": hours},
        )
    assert (await login(client, "ada@example.org")).status_code == 200
    left = await dbs.session.execute(text("SELECT jti::text FROM user_refresh_tokens"))
    jtis = set(left.scalars())
    kept = {name for name in expired if str(uuid.uuid5(uuid.NAMESPACE_URL, name)) in jtis}
    assert kept == {"ada, 12 hours", "bob, 2 days"}
    tokens = await dbs.session.execute(
        text("SELECT count(*) FROM user_refresh_tokens WHERE user_id = :id"), {"id": ada.id}
    )
    assert tokens.scalar_one() == 2  # the one kept and the login's own


async def _rotated_seconds_ago(dbs: Databases, seconds: int) -> None:
    await dbs.session.execute(
        text(
            "UPDATE user_refresh_tokens SET used_on = now() - make_interval(secs => :s) "
            "WHERE used_on IS NOT NULL"
        ),
        {"s": seconds},
    )
    await dbs.session.commit()


async def test_reusing_a_refresh_token_after_the_grace_period_ends_every_session(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    first = await tokens_for(client, "ada@example.org")
    other_login = await tokens_for(client, "ada@example.org")
    rotated = await client.post("/auth/refresh-tokens", json={"token": first["refresh_token"]})
    await _rotated_seconds_ago(dbs, 11)  # past USERS_REFRESH_REUSE_GRACE_SECONDS (10)
    reuse = await client.post("/auth/refresh-tokens", json={"token": first["refresh_token"]})
    assert reuse.status_code == 400
    assert detail(reuse)["code"] == "REFRESH_TOKEN_INVALID"
    stolen_family = await client.post(
        "/auth/refresh-tokens", json={"token": rotated.json()["refresh_token"]}
    )
    assert stolen_family.status_code == 400
    # The thief's access token dies at once (token_version), and so do other logins'.
    for access in (rotated.json()["access_token"], other_login["access_token"]):
        assert (await client.get("/users/user", headers=bearer(access))).status_code == 401


async def test_two_tabs_refreshing_at_once_stay_logged_in(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    pair = await tokens_for(client, "ada@example.org")
    first_tab = await client.post("/auth/refresh-tokens", json={"token": pair["refresh_token"]})
    await _rotated_seconds_ago(dbs, 2)
    second_tab = await client.post("/auth/refresh-tokens", json={"token": pair["refresh_token"]})
    assert (first_tab.status_code, second_tab.status_code) == (200, 200)
    assert claims(second_tab.json()["refresh_token"])["fam"] == claims(pair["refresh_token"])["fam"]
    for tab in (first_tab, second_tab):
        body = tab.json()
        assert (await client.get("/users/user", headers=bearer(body["access_token"]))).is_success
        again = await client.post("/auth/refresh-tokens", json={"token": body["refresh_token"]})
        assert again.status_code == 200


async def test_refresh_refuses_other_kinds_of_token(client: httpx.AsyncClient, ada: User) -> None:
    pair = await tokens_for(client, "ada@example.org")
    response = await client.post("/auth/refresh-tokens", json={"token": pair["access_token"]})
    assert response.status_code == 400
    assert detail(response)["code"] == "REFRESH_TOKEN_INVALID"


async def test_logout_ends_the_session(client: httpx.AsyncClient, ada: User) -> None:
    pair = await tokens_for(client, "ada@example.org")
    other_device = await tokens_for(client, "ada@example.org")
    response = await client.post("/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"logged_out": True}
    for refresh_token in (pair["refresh_token"], other_device["refresh_token"]):
        refused = await client.post("/auth/refresh-tokens", json={"token": refresh_token})
        assert refused.status_code == 400
    assert (
        await client.get("/users/user", headers=bearer(pair["access_token"]))
    ).status_code == 401
    assert (await client.post("/auth/logout")).status_code == 401
    assert (await login(client, "ada@example.org")).status_code == 200  # may log in again


# --- POST /auth/forgot-password and /auth/reset-password ------------------------------


async def test_forgot_password_emails_a_reset_link(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    response = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    assert response.status_code == 200
    assert response.json() == {"token_sent": True}
    [mail] = await outbox_for(dbs, "ada@example.org")
    assert mail.template == "reset_password"
    assert "http://localhost:3000/forgot-password/reset?reset_token=" in mail.body_text


async def test_email_links_are_built_by_the_notifications_app(
    client: httpx.AsyncClient, ada: User, dbs: Databases, users_env: UsersEnv
) -> None:
    users_env(
        RESET_PASSWORD_PATH="account/reset",
        RESET_PASSWORD_TOKEN_PARAMETER="t",
        RETURN_VERIFICATION_TOKENS="1",
    )
    await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    [reset] = await outbox_for(dbs, "ada@example.org")
    assert f"{notifications.app_link('/account/reset')}?t=" in reset.body_text
    await register(client, "grace@example.org")
    await verify(client, *await request_code(client, "grace@example.org"))
    welcome = (await outbox_for(dbs, "grace@example.org"))[-1]
    assert welcome.template == "welcome"
    assert notifications.app_link("/login") in welcome.body_text


async def test_forgot_password_answers_the_same_for_unknown_emails(
    client: httpx.AsyncClient, ada: User, dbs: Databases, users_env: UsersEnv
) -> None:
    known = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    unknown = await client.post("/auth/forgot-password", json={"email": "nobody@example.org"})
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert await outbox_for(dbs, "nobody@example.org") == []

    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    known = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    unknown = await client.post("/auth/forgot-password", json={"email": "nobody@example.org"})
    assert set(known.json()) == set(unknown.json()) == {"token_sent", "forgot_password_token"}


async def test_reset_password_with_the_emailed_token(
    client: httpx.AsyncClient, ada: User, dbs: Databases, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    old = await tokens_for(client, "ada@example.org")
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    token = forgot.json()["forgot_password_token"]
    [mail] = await outbox_for(dbs, "ada@example.org")
    assert f"token={token}" in mail.body_text

    body = {"email": "ada@example.org", "token": token, "password": NEW_PASSWORD}
    response = await client.post("/auth/reset-password", json=body)
    assert response.status_code == 200
    assert response.json() == {"password_reset": True}

    assert (await login(client, "ada@example.org")).status_code == 400
    assert (await login(client, "ada@example.org", NEW_PASSWORD)).status_code == 200
    # Every token issued before the reset is dead.
    assert (await client.get("/users/user", headers=bearer(old["access_token"]))).status_code == 401
    refresh = await client.post("/auth/refresh-tokens", json={"token": old["refresh_token"]})
    assert refresh.status_code == 400
    # The reset token worked once.
    body["password"] = "Yet-Another-Pass-99"
    again = await client.post("/auth/reset-password", json=body)
    assert detail(again)["code"] == "RESET_PASSWORD_BAD_TOKEN"
    templates = [m.template for m in await outbox_for(dbs, "ada@example.org")]
    assert templates == ["reset_password", "password_changed"]


async def test_reset_password_checks_the_policy(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    body = {
        "email": "ada@example.org",
        "token": forgot.json()["forgot_password_token"],
        "password": "short",
    }
    response = await client.post("/auth/reset-password", json=body)
    assert response.status_code == 400
    assert detail(response)["code"] == "RESET_PASSWORD_INVALID_PASSWORD"
    assert detail(response)["reason"] == "TOO_SHORT"


async def test_reset_token_is_bound_to_its_user(
    client: httpx.AsyncClient, ada: User, dbs: Databases, users_env: UsersEnv
) -> None:
    await make_user(dbs, email="mallory@example.org")
    await dbs.session.commit()
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    forgot = await client.post("/auth/forgot-password", json={"email": "mallory@example.org"})
    body = {
        "email": "ada@example.org",
        "token": forgot.json()["forgot_password_token"],
        "password": NEW_PASSWORD,
    }
    response = await client.post("/auth/reset-password", json=body)
    assert response.status_code == 400
    assert detail(response)["code"] == "RESET_PASSWORD_BAD_TOKEN"
    assert (await login(client, "ada@example.org")).status_code == 200


# --- /users/user, /users, /_authenticated ---------------------------------------------


async def test_read_and_update_myself(client: httpx.AsyncClient, ada: User) -> None:
    headers = auth_headers(ada)
    me = await client.get("/users/user", headers=headers)
    assert me.status_code == 200
    assert me.json() == {
        "id": str(ada.id),
        "email": "ada@example.org",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    changed = await client.patch("/users/user", headers=headers, json={"first_name": " Augusta "})
    assert changed.status_code == 200
    assert changed.json()["first_name"] == "Augusta"
    assert changed.json()["last_name"] == "Lovelace"
    assert (await client.get("/users/user", headers=headers)).json()["first_name"] == "Augusta"
    empty = await client.patch("/users/user", headers=headers, json={"last_name": ""})
    assert empty.status_code == 422


async def test_a_user_changes_only_itself(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    other = await make_user(dbs, email="bob@example.org", first_name="Bob")
    await dbs.session.commit()
    response = await client.patch(
        "/users/user", headers=auth_headers(ada), json={"first_name": "Hacked", "id": str(other.id)}
    )
    assert response.json()["id"] == str(ada.id)
    bob = await dbs.users.get(other.id)
    assert bob is not None
    assert bob.first_name == "Bob"


async def test_users_me_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/user")).status_code == 401
    response = await client.patch("/users/user", json={"first_name": "X"})
    assert response.status_code == 401
    assert detail(response)["code"] == "NOT_AUTHENTICATED"


async def test_list_users_is_for_superusers_and_paginated(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    admin = await make_user(dbs, email="admin@example.org", superuser=True)
    plain = await make_user(dbs, email="plain@example.org")
    for number in range(5):
        await make_user(dbs, email=f"user{number}@example.org")
    await dbs.session.commit()
    admin_headers, plain_headers = auth_headers(admin), auth_headers(plain)

    first = await client.get("/users", headers=admin_headers, params={"page_size": 5})
    assert first.status_code == 200
    total = first.json()["total"]
    assert total >= 7
    assert len(first.json()["results"]) == 5
    assert set(first.json()["results"][0]) == {"id", "email", "first_name", "last_name"}
    emails: list[str] = []
    for page in range(1, (total + 4) // 5 + 1):
        params: dict[str, str | int] = {
            "page": page,
            "page_size": 5,
            "order_by": "email",
            "order_direction": "desc",
        }
        response = await client.get("/users", headers=admin_headers, params=params)
        emails += [user["email"] for user in response.json()["results"]]
    assert len(emails) == len(set(emails)) == total
    assert emails == sorted(emails, reverse=True)

    forbidden = await client.get("/users", headers=plain_headers)
    assert forbidden.status_code == 403
    assert detail(forbidden)["code"] == "NOT_SUPERUSER"
    assert (await client.get("/users")).status_code == 401
    bad: list[dict[str, str | int]] = [{"page": 0}, {"page_size": 7}, {"order_by": "password"}]
    for params in bad:
        response = await client.get("/users", headers=admin_headers, params=params)
        assert response.status_code == 422, params


# --- bad input: 4xx, never 500 ---------------------------------------------------------


@pytest.mark.parametrize("name", ["Ada\x00", "Ada\x1b[31m", "Ada\nLovelace"])
@pytest.mark.parametrize("field", ["first_name", "last_name"])
async def test_control_characters_in_names_are_422(
    client: httpx.AsyncClient, ada: User, field: str, name: str
) -> None:
    body = {"email": "grace@example.org", "password": STRONG_PASSWORD, "first_name": "Grace"}
    body["last_name"] = "Hopper"
    response = await client.post("/register", json={**body, field: name})
    assert response.status_code == 422
    patched = await client.patch("/users/user", headers=auth_headers(ada), json={field: name})
    assert patched.status_code == 422


@pytest.mark.parametrize("page", [10**20, 1_000_001])
async def test_absurd_pages_are_422(client: httpx.AsyncClient, dbs: Databases, page: int) -> None:
    admin = auth_headers(await make_user(dbs, email="admin@example.org", superuser=True))
    await dbs.session.commit()
    for params in ({"page": page}, {"page_size": page}):
        response = await client.get("/users", headers=admin, params=params)
        assert response.status_code == 422
    last = await client.get("/users", headers=admin, params={"page": 1_000_000})
    assert last.status_code == 200
    assert last.json()["results"] == []


async def test_authenticated_greets_the_caller(client: httpx.AsyncClient, ada: User) -> None:
    response = await client.get("/_authenticated", headers=auth_headers(ada))
    assert response.status_code == 200
    assert response.json() == {"message": "Hello Ada!"}
    assert (await client.get("/_authenticated")).status_code == 401


async def test_login_form_drives_the_docs_authorize_button(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    [oauth2] = [scheme for scheme in schemes.values() if scheme["type"] == "oauth2"]
    assert oauth2["flows"]["password"]["tokenUrl"] == "login"


async def test_token_answers_are_never_cached(client: httpx.AsyncClient, ada: User) -> None:
    logged_in = await login(client, "ada@example.org")
    token = logged_in.json()["refresh_token"]
    refreshed = await client.post("/auth/refresh-tokens", json={"token": token})
    for response in (logged_in, refreshed):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
