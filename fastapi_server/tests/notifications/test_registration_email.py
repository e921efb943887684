"""The whole registration flow, driven only by what arrives by email (real SMTP)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.tests.helpers.mail import SMTPCatcher, html_body, text_body
from fastapi_server.tests.helpers.users import STRONG_PASSWORD


@pytest.fixture
def users_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Codes are only emailed (never returned); argon2 at its cheapest for speed."""
    monkeypatch.delenv("USERS_RETURN_VERIFICATION_TOKENS", raising=False)
    monkeypatch.setenv("USERS_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("USERS_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("USERS_ARGON2_PARALLELISM", "1")
    get_users_settings.cache_clear()
    assert not get_users_settings().return_verification_tokens
    yield
    monkeypatch.undo()
    get_users_settings.cache_clear()


@pytest.mark.usefixtures("users_settings")
async def test_registration_flow_driven_only_by_the_emailed_code(
    committed_client: httpx.AsyncClient, smtp: SMTPCatcher
) -> None:
    email = "grace@example.com"
    registered = await committed_client.post(
        "/register",
        json={
            "email": email,
            "password": STRONG_PASSWORD,
            "first_name": "Grace",
            "last_name": "Hopper",
        },
    )
    assert registered.status_code == 201, registered.text

    requested = await committed_client.post(
        "/auth/request-verification-token", json={"email": email}
    )
    assert requested.status_code == 200, requested.text
    assert "registration_code" not in requested.json()  # the code travels by email only
    token = requested.json()["verification_token"]

    code_email = await smtp.wait_for(email)
    assert code_email["To"] == "grace@example.com"  # no name typed by the registrant
    match = re.search(r"verification code is: (\d{6})", text_body(code_email))
    assert match, text_body(code_email)
    code = match.group(1)
    assert code in html_body(code_email)

    not_yet = await committed_client.post(
        "/login", data={"username": email, "password": STRONG_PASSWORD}
    )
    assert not_yet.status_code == 400
    assert not_yet.json()["detail"]["code"] == "LOGIN_USER_NOT_VERIFIED"

    verified = await committed_client.post(
        "/auth/verify", json={"token": token, "registration_code": code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"verified": True}

    welcome = await smtp.wait_for(email, count=2)
    assert "Welcome" in welcome["Subject"]
    assert "Hello Grace," in text_body(welcome)
    assert "/login" in text_body(welcome)

    logged_in = await committed_client.post(
        "/login", data={"username": email, "password": STRONG_PASSWORD}
    )
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["token_type"] == "bearer"
    assert logged_in.json()["access_token"]
