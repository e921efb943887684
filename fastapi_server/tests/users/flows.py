"""HTTP steps the users tests repeat: register, get a code, verify, log in."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from fastapi_server.tests.helpers.users import STRONG_PASSWORD


async def register(
    client: httpx.AsyncClient,
    email: str,
    password: str = STRONG_PASSWORD,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
) -> httpx.Response:
    body = {"email": email, "password": password, "first_name": first_name, "last_name": last_name}
    return await client.post("/register", json=body)


async def request_code(client: httpx.AsyncClient, email: str) -> tuple[str, str]:
    """(verification_token, registration_code); needs USERS_RETURN_VERIFICATION_TOKENS=1."""
    response = await client.post("/auth/request-verification-token", json={"email": email})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["verification_token"], body["registration_code"]


async def verify(client: httpx.AsyncClient, token: str, code: str) -> httpx.Response:
    return await client.post("/auth/verify", json={"token": token, "registration_code": code})


async def login(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD, path: str = "/login"
) -> httpx.Response:
    return await client.post(path, data={"username": email, "password": password})


async def tokens_for(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD
) -> dict[str, Any]:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, as anyone (the front end) can read it without the secret."""
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def detail(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["detail"]
    return body
