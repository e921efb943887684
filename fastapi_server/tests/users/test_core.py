"""The rules users rely on: tokens, lockout, enumeration, verification codes, resets."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.users import core, passwords, tokens
from fastapi_server.apps.users.entitlements import OptionalUser
from fastapi_server.apps.users.lifespan import InsecureSecrets
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import DEV_SECRET, get_users_settings
from fastapi_server.apps.users.tokens import TokenKind
from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
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

WRONG = "Wrong-Password-1"


# --- tokens ---------------------------------------------------------------------------


async def test_other_kinds_of_token_never_pass_as_access_tokens(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    pair = await tokens_for(client, "ada@example.org")
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    same_secret_wrong_kind = tokens.encode(TokenKind.REFRESH, ada.id, {"ver": 0}).token
    for token in (
        pair["refresh_token"],
        forgot.json()["forgot_password_token"],
        tokens.encode(TokenKind.VERIFICATION, ada.id, {"jti": str(uuid.uuid4())}).token,
        same_secret_wrong_kind,
    ):
        response = await client.get("/users/user", headers=bearer(token))
        assert response.status_code == 401
        assert detail(response)["code"] == "NOT_AUTHENTICATED"
    assert (
        await client.get("/users/user", headers=bearer(pair["access_token"]))
    ).status_code == 200


def _forge(payload: dict[str, object], key: str, algorithm: str) -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_alg_none_other_algorithms_tampering_and_expiry_are_refused(
    client: httpx.AsyncClient, ada: User
) -> None:
    good = core.access_token(ada).token
    payload = claims(good)
    header, body, signature = good.split(".")
    tampered_body = jwt.utils.base64url_encode(
        json.dumps({**payload, "user_id": str(uuid.uuid4())}).encode()
    ).decode()
    secret = get_users_settings().jwt_secret
    expired = core.access_token(ada, now=datetime.now(UTC) - timedelta(hours=1)).token
    for token in (
        f"{_none_header()}.{body}.",  # alg: none, no signature
        _forge(payload, secret, "HS512"),
        _forge(payload, "another-secret-of-enough-length-0123456789", "HS256"),
        f"{header}.{tampered_body}.{signature}",
        expired,
        "garbage",
    ):
        response = await client.get("/users/user", headers=bearer(token))
        assert response.status_code == 401, token
    assert (await client.get("/users/user", headers=bearer(good))).status_code == 200


async def test_a_remembered_access_token_still_expires(
    client: httpx.AsyncClient, ada: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = core.access_token(ada).token
    assert (await client.get("/users/user", headers=bearer(token))).status_code == 200
    expiry = claims(token)["exp"]
    assert tokens.decode(TokenKind.ACCESS, token)["exp"] == expiry  # remembered now
    monkeypatch.setattr(time, "time", lambda: float(expiry))  # the second it expires
    with pytest.raises(tokens.InvalidToken):
        tokens.decode(TokenKind.ACCESS, token)
    response = await client.get("/users/user", headers=bearer(token))
    assert response.status_code == 401
    assert detail(response)["code"] == "NOT_AUTHENTICATED"


async def test_a_remembered_access_token_is_refused_once_the_secret_changes(
    ada: User, users_env: UsersEnv
) -> None:
    token = core.access_token(ada).token
    assert tokens.decode(TokenKind.ACCESS, token)["sub"] == ada.id
    users_env(JWT_SECRET="a-new-secret-after-rotation-0123456789abcdef")
    with pytest.raises(tokens.InvalidToken):
        tokens.decode(TokenKind.ACCESS, token)


async def test_callers_cannot_change_a_remembered_token(ada: User) -> None:
    token = core.access_token(ada).token
    tokens.decode(TokenKind.ACCESS, token)["sub"] = uuid.uuid4()
    assert tokens.decode(TokenKind.ACCESS, token)["sub"] == ada.id


def _none_header() -> str:
    return jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()


async def test_deactivation_invalidates_earlier_tokens_even_after_reactivation(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    pair = await tokens_for(client, "ada@example.org")
    # As an operator would in psql: the trigger bumps the token version.
    await dbs.session.execute(
        text("UPDATE users SET is_active = false WHERE id = :id"), {"id": ada.id}
    )
    await dbs.session.commit()  # the 401 below rolls its own savepoint back, not this
    user = await dbs.users.get(ada.id)
    assert user is not None
    assert user.deactivated_on is not None
    assert (
        await client.get("/users/user", headers=bearer(pair["access_token"]))
    ).status_code == 401
    await core.activate_user(dbs, "ada@example.org")
    await dbs.session.commit()
    assert (
        await client.get("/users/user", headers=bearer(pair["access_token"]))
    ).status_code == 401
    refresh = await client.post("/auth/refresh-tokens", json={"token": pair["refresh_token"]})
    assert refresh.status_code == 400
    assert (await login(client, "ada@example.org")).status_code == 200


async def test_optional_user_is_none_without_a_header_and_401_with_a_bad_one(
    app: FastAPI, client: httpx.AsyncClient, ada: User
) -> None:
    @app.get("/probe/optional-user")
    async def probe(user: OptionalUser) -> dict[str, str | None]:
        return {"email": None if user is None else user.email}

    assert (await client.get("/probe/optional-user")).json() == {"email": None}
    mine = await client.get("/probe/optional-user", headers=auth_headers(ada))
    assert mine.json() == {"email": "ada@example.org"}
    assert (await client.get("/probe/optional-user", headers=bearer("nope"))).status_code == 401
    basic = await client.get("/probe/optional-user", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


SECRET_NAMES = ("JWT_SECRET", "VERIFICATION_TOKEN_SECRET", "RESET_PASSWORD_TOKEN_SECRET")
REAL_SECRETS = {name: f"{name.lower()}-{'r' * 40}" for name in SECRET_NAMES}


def _production_app(settings: Settings) -> FastAPI:
    app = create_app(settings.model_copy(update={"env": "production"}))
    # About the users secrets only: no email worker (it has production checks of its own).
    app.state.notifications_settings = NotificationsSettings(worker_in_process=False)
    return app


async def _refusal(settings: Settings) -> str:
    app = _production_app(settings)
    with pytest.raises(InsecureSecrets) as refused:
        async with app.router.lifespan_context(app):
            pass
    return str(refused.value)


def _named(message: str) -> list[str]:
    return [name for name in SECRET_NAMES if f"USERS_{name}" in message]


@pytest.mark.parametrize("name", SECRET_NAMES)
@pytest.mark.parametrize("value", ["", "too-short-0123456789", "changeme", DEV_SECRET])
async def test_production_refuses_to_start_with_each_placeholder_secret(
    settings: Settings, users_env: UsersEnv, name: str, value: str
) -> None:
    users_env(**{**REAL_SECRETS, name: value})
    assert _named(await _refusal(settings)) == [name]


async def test_production_refuses_two_token_secrets_alike(
    settings: Settings, users_env: UsersEnv
) -> None:
    users_env(**{**REAL_SECRETS, "RESET_PASSWORD_TOKEN_SECRET": REAL_SECRETS["JWT_SECRET"]})
    refusal = await _refusal(settings)
    assert "(USERS_JWT_SECRET = USERS_RESET_PASSWORD_TOKEN_SECRET)" in refusal


@pytest.mark.parametrize("switch", ["RETURN_VERIFICATION_TOKENS", "RETURN_FORGOT_PASSWORD_TOKEN"])
async def test_production_refuses_the_dev_switches_that_hand_out_secrets(
    settings: Settings, users_env: UsersEnv, switch: str
) -> None:
    users_env(**REAL_SECRETS, **{switch: "1"})
    assert f"USERS_{switch}" in await _refusal(settings)


async def test_production_names_every_secret_left_at_its_default(
    settings: Settings, users_env: UsersEnv
) -> None:
    assert _named(await _refusal(settings)) == list(SECRET_NAMES)
    users_env(**REAL_SECRETS)
    app = _production_app(settings)
    async with app.router.lifespan_context(app):
        pass  # starts


# --- login: enumeration, lockout, logging ---------------------------------------------


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes that passwords were verified against during the test, in order."""
    hashes: list[str] = []
    real_verify = passwords.verify_password_sync

    def counting_verify(password: str, hashed: str) -> tuple[bool, str | None]:
        hashes.append(hashed)
        return real_verify(password, hashed)

    monkeypatch.setattr(passwords, "verify_password_sync", counting_verify)
    return hashes


async def test_unknown_email_answers_like_a_wrong_password_after_the_same_work(
    client: httpx.AsyncClient, ada: User, verified: list[str]
) -> None:
    wrong = await login(client, "ada@example.org", WRONG)
    assert len(verified) == 1
    unknown = await login(client, "nobody@example.org", WRONG)
    assert len(verified) == 2  # a dummy hash was verified too
    assert verified[1].startswith("$argon2id$")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.json() == wrong.json()


async def test_a_locked_account_answers_after_the_same_work(
    client: httpx.AsyncClient, ada: User, dbs: Databases, verified: list[str]
) -> None:
    await dbs.session.execute(
        text("UPDATE users SET locked_until = now() + interval '1 hour' WHERE id = :id"),
        {"id": ada.id},
    )
    await dbs.session.commit()
    locked = await login(client, "ada@example.org")
    assert locked.status_code == 429
    assert detail(locked)["code"] == "LOGIN_USER_LOCKED"
    assert locked.headers["retry-after"] == str(detail(locked)["retry_after"])
    assert verified == [passwords.dummy_hash()]  # as long as a real verify, told nothing


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes verified from now on (each costs a real hash computation)."""
    context = passwords.crypt_context()
    seen: list[str] = []
    real_verify, real_verify_and_update = context.verify, context.verify_and_update

    def verify(secret: str | bytes, hashed: str) -> bool:
        seen.append(hashed)
        return bool(real_verify(secret, hashed))

    def verify_and_update(secret: str | bytes, hashed: str) -> tuple[bool, str | None]:
        seen.append(hashed)
        matches, new_hash = real_verify_and_update(secret, hashed)
        return bool(matches), new_hash

    monkeypatch.setattr(context, "verify", verify)
    monkeypatch.setattr(context, "verify_and_update", verify_and_update)
    return seen


@pytest.mark.parametrize("email", ["ada@example.org", "nobody@example.org"])
async def test_a_password_too_long_to_hash_is_bad_credentials_after_the_same_work(
    client: httpx.AsyncClient, ada: User, verifications: list[str], email: str
) -> None:
    huge = "A" * 5000  # passlib refuses over 4096 (PasswordSizeError)
    response = await login(client, email, huge)
    assert response.status_code == 400
    assert detail(response)["code"] == "LOGIN_BAD_CREDENTIALS"
    assert len(verifications) == 1  # one real verify, as for any password
    assert verifications[0].startswith("$argon2id$")


async def test_a_nul_in_the_login_email_is_bad_credentials_after_the_same_work(
    client: httpx.AsyncClient, ada: User, verifications: list[str]
) -> None:
    response = await login(client, "ada@example.org\x00")
    assert response.status_code == 400
    assert detail(response)["code"] == "LOGIN_BAD_CREDENTIALS"
    assert verifications == [passwords.dummy_hash()]


async def test_five_failures_lock_the_account_and_the_lock_doubles(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    ada_id = ada.id  # a refused request rolls back its savepoint and expires loaded objects
    for _ in range(4):
        assert (
            detail(await login(client, "ada@example.org", WRONG))["code"] == "LOGIN_BAD_CREDENTIALS"
        )
    user = await dbs.users.get(ada_id)
    assert user is not None
    assert user.login_failed_count == 4
    assert user.locked_until is None
    assert (await login(client, "ada@example.org", WRONG)).status_code == 400  # the fifth

    locked = await login(client, "ada@example.org")  # even the right password waits
    assert locked.status_code == 429
    assert detail(locked)["code"] == "LOGIN_USER_LOCKED"
    assert 290 <= detail(locked)["retry_after"] <= 300

    await _lock_expires(dbs, ada_id)
    await login(client, "ada@example.org", WRONG)  # a sixth failure: 600 s
    assert 590 <= detail(await login(client, "ada@example.org"))["retry_after"] <= 600
    await _lock_expires(dbs, ada_id)
    await login(client, "ada@example.org", WRONG)  # a seventh: 1200 s
    assert 1190 <= detail(await login(client, "ada@example.org"))["retry_after"] <= 1200


async def _lock_expires(dbs: Databases, user_id: uuid.UUID) -> None:
    await dbs.session.execute(
        text("UPDATE users SET locked_until = now() - interval '1 second' WHERE id = :id"),
        {"id": user_id},
    )
    await dbs.session.commit()


async def test_the_lock_is_capped_at_a_day_and_a_success_resets_the_count(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    ada_id = ada.id
    await dbs.session.execute(
        text("UPDATE users SET login_failed_count = 5000, login_failed_on = now() WHERE id = :id"),
        {"id": ada_id},
    )
    await dbs.session.commit()
    await login(client, "ada@example.org", WRONG)
    locked = await login(client, "ada@example.org")
    assert 86390 <= detail(locked)["retry_after"] <= 86400

    await _lock_expires(dbs, ada_id)
    assert (await login(client, "ada@example.org")).status_code == 200
    user = await dbs.users.get(ada_id)
    assert user is not None
    assert user.login_failed_count == 0
    assert user.locked_until is None


async def test_a_login_reads_the_users_row_anew_even_when_the_session_holds_it(
    dbs: Databases,
) -> None:
    user = await make_user(dbs, email="Grace@Example.org")
    assert user.login_failed_count == 0
    # Another statement changes the row behind the object the session already holds.
    await dbs.session.execute(
        text("UPDATE users SET login_failed_count = 4 WHERE id = :id"), {"id": user.id}
    )
    found = await dbs.users.get_by_email_locked("grace@example.ORG")
    assert found is not None
    locked, now = found
    assert locked is user  # the session's object, refreshed from the row
    assert locked.login_failed_count == 4
    assert now.tzinfo is not None


async def test_every_login_attempt_is_logged_without_the_password(
    client: httpx.AsyncClient, ada: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastapi_server.apps.users")
    await login(client, "ada@example.org")
    await login(client, "ada@example.org", WRONG)
    await login(client, "nobody@example.org", WRONG)
    records = [r for r in caplog.records if r.name == "fastapi_server.apps.users.core"]
    attempts = [
        (r.getMessage(), getattr(r, "email", None), getattr(r, "reason", None)) for r in records
    ]
    assert ("login succeeded", "ada@example.org", None) in attempts
    assert ("login failed", "ada@example.org", "bad_password") in attempts
    assert ("login failed", None, "unknown_email") in attempts
    logged = " ".join(str(vars(r)) for r in caplog.records)
    assert STRONG_PASSWORD not in logged
    assert WRONG not in logged


async def test_an_unknown_username_is_logged_as_a_keyed_hash_only(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastapi_server.apps.users")
    typed = "My-Password-In-The-Username-Field-9"  # a classic slip
    await login(client, typed, WRONG)
    [record] = [r for r in caplog.records if getattr(r, "reason", None) == "unknown_email"]
    assert getattr(record, "email_hash", None) == core.pseudonym(typed)
    assert typed not in " ".join(str(vars(r)) for r in caplog.records)


def test_text_logs_escape_line_breaks() -> None:
    from fastapi_server.lib.logging import TextFormatter

    record = logging.LogRecord("x", logging.WARNING, "", 0, "got %s", ("a\nFAKE b",), None)
    record.email = "c\r\nFAKE d"
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert "\r" not in line
    assert "a\\nFAKE b" in line


# --- verification codes ---------------------------------------------------------------


@pytest.fixture
def dev_codes(users_env: UsersEnv) -> None:
    users_env(RETURN_VERIFICATION_TOKENS="1")


@pytest.mark.usefixtures("dev_codes")
async def test_a_code_expires(client: httpx.AsyncClient, dbs: Databases) -> None:
    await register(client, "grace@example.org")
    token, code = await request_code(client, "grace@example.org")
    await dbs.session.execute(
        text("UPDATE user_verification_codes SET expires_on = now() - interval '1 second'")
    )
    await dbs.session.commit()
    response = await verify(client, token, code)
    assert detail(response)["code"] == "VERIFY_USER_BAD_TOKEN"
    assert detail(response)["reason"] == "EXPIRED"
    lifetime = claims(token)["exp"] - claims(token)["iat"]
    assert lifetime <= 600


@pytest.mark.usefixtures("dev_codes")
async def test_only_the_newest_code_works_and_only_once(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await register(client, "grace@example.org")
    old_token, old_code = await request_code(client, "grace@example.org")
    token, code = await request_code(client, "grace@example.org")
    superseded = await verify(client, old_token, old_code)
    assert detail(superseded)["reason"] == "USED"
    assert (await verify(client, token, code)).status_code == 200
    again = await verify(client, token, code)
    assert again.status_code == 400
    assert detail(again)["code"] == "VERIFY_USER_ALREADY_VERIFIED"


@pytest.mark.usefixtures("dev_codes")
async def test_wrong_attempts_are_capped(client: httpx.AsyncClient) -> None:
    await register(client, "grace@example.org")
    token, code = await request_code(client, "grace@example.org")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    lefts = [detail(await verify(client, token, wrong))["attempts_left"] for _ in range(5)]
    assert lefts == [4, 3, 2, 1, 0]
    blocked = await verify(client, token, code)  # the right code, too late
    assert blocked.status_code == 400
    assert detail(blocked)["reason"] == "TOO_MANY_ATTEMPTS"


@pytest.mark.usefixtures("dev_codes")
async def test_codes_per_hour_are_capped(client: httpx.AsyncClient, users_env: UsersEnv) -> None:
    users_env(RATE_LIMIT_EMAILS_PER_ADDRESS="100")  # the account's own cap is under test
    await register(client, "grace@example.org")
    for _ in range(5):
        await request_code(client, "grace@example.org")
    response = await client.post(
        "/auth/request-verification-token", json={"email": "grace@example.org"}
    )
    assert response.status_code == 429
    assert detail(response)["code"] == "VERIFY_TOO_MANY_REQUESTS"
    assert response.headers["retry-after"] == "3600"


@pytest.mark.usefixtures("dev_codes")
async def test_request_verification_looks_the_same_for_any_email(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    await register(client, "grace@example.org")
    pending = await client.post(
        "/auth/request-verification-token", json={"email": "grace@example.org"}
    )
    for email in ("nobody@example.org", "ada@example.org"):  # unknown, already verified
        response = await client.post("/auth/request-verification-token", json={"email": email})
        assert response.status_code == pending.status_code == 200
        assert set(response.json()) == set(pending.json())
        body = response.json()
        assert (
            detail(await verify(client, body["verification_token"], body["registration_code"]))[
                "code"
            ]
            == "VERIFY_USER_BAD_TOKEN"
        )
    assert await dbs.notifications.for_recipient("nobody@example.org") == []


# --- password reset -------------------------------------------------------------------


async def test_reset_tokens_expire_within_an_hour(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    token = forgot.json()["forgot_password_token"]
    assert claims(token)["exp"] - claims(token)["iat"] <= 3600
    expired = tokens.encode(
        TokenKind.RESET,
        ada.id,
        {"pfp": claims(token)["pfp"]},
        now=datetime.now(UTC) - timedelta(seconds=3601),
    ).token
    body = {"email": "ada@example.org", "token": expired, "password": "Brand-New-Pass-5"}
    response = await client.post("/auth/reset-password", json=body)
    assert detail(response)["code"] == "RESET_PASSWORD_BAD_TOKEN"


async def test_a_reset_clears_the_lockout(
    client: httpx.AsyncClient, ada: User, users_env: UsersEnv
) -> None:
    users_env(RETURN_FORGOT_PASSWORD_TOKEN="1")
    for _ in range(5):
        await login(client, "ada@example.org", WRONG)
    assert (await login(client, "ada@example.org")).status_code == 429
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.org"})
    body = {
        "email": "ada@example.org",
        "token": forgot.json()["forgot_password_token"],
        "password": "Brand-New-Pass-5",
    }
    assert (await client.post("/auth/reset-password", json=body)).status_code == 200
    assert (await login(client, "ada@example.org", "Brand-New-Pass-5")).status_code == 200


async def test_make_user_helper_users_can_log_in(client: httpx.AsyncClient, dbs: Databases) -> None:
    user = await make_user(dbs, email="helper@example.org", first_name="Helper")
    await dbs.session.commit()
    assert claims((await tokens_for(client, "helper@example.org"))["access_token"])[
        "user_id"
    ] == str(user.id)
