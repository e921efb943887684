"""JWTs of the users app: one audience, lifetime and ``typ`` per kind, HS256 only.

Kinds: ``access`` (Bearer), ``refresh`` (rotated, server-side state), ``verification``
(names a stored code, never carries it) and ``reset`` (bound to the password hash in
force). Decoding accepts only HS256 (so ``alg: none`` and every other algorithm are
refused), the kind's audience and ``typ``, and an unexpired ``exp``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from fastapi_server.apps.users.settings import UsersSettings, get_users_settings

ALGORITHM = "HS256"


class TokenKind(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    VERIFICATION = "verification"
    RESET = "reset"


AUDIENCES = {
    TokenKind.ACCESS: "fastapi-users:access",
    TokenKind.REFRESH: "fastapi-users:refresh",
    TokenKind.VERIFICATION: "fastapi-users:verify",
    TokenKind.RESET: "fastapi-users:reset",
}


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or of another kind."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    lifetime_seconds: int


def _secret(kind: TokenKind, settings: UsersSettings) -> str:
    if kind is TokenKind.VERIFICATION:
        return settings.verification_token_secret
    if kind is TokenKind.RESET:
        return settings.reset_password_token_secret
    return settings.jwt_secret


def lifetime_seconds(kind: TokenKind, settings: UsersSettings | None = None) -> int:
    """How long a token of ``kind`` lives."""
    settings = settings or get_users_settings()
    return {
        TokenKind.ACCESS: settings.access_token_lifetime_seconds,
        TokenKind.REFRESH: settings.refresh_token_lifetime_seconds,
        TokenKind.VERIFICATION: settings.verification_code_lifetime_seconds,
        TokenKind.RESET: settings.reset_password_token_lifetime_seconds,
    }[kind]


def encode(
    kind: TokenKind,
    subject: uuid.UUID,
    claims: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    settings: UsersSettings | None = None,
) -> IssuedToken:
    """A signed token of ``kind`` for ``subject`` with extra ``claims``."""
    settings = settings or get_users_settings()
    now = now or datetime.now(UTC)
    lifetime = lifetime_seconds(kind, settings)
    payload = {
        **(claims or {}),
        "sub": str(subject),
        "typ": kind.value,
        "aud": AUDIENCES[kind],
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
    }
    token = jwt.encode(payload, _secret(kind, settings), algorithm=ALGORITHM)
    return IssuedToken(token, lifetime)


def decode(kind: TokenKind, token: str, *, settings: UsersSettings | None = None) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; ``InvalidToken`` otherwise."""
    settings = settings or get_users_settings()
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _secret(kind, settings),
            algorithms=[ALGORITHM],
            audience=AUDIENCES[kind],
            options={"require": ["exp", "iat", "sub", "aud", "typ"]},
        )
        claims["sub"] = uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("typ") != kind.value:
        raise InvalidToken(f"not a {kind.value} token")
    return claims


def fingerprint(value: str, *, settings: UsersSettings | None = None) -> str:
    """HMAC-SHA256 (hex) of ``value``: binds tokens and codes to a password hash."""
    settings = settings or get_users_settings()
    key = settings.reset_password_token_secret.encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def code_hmac(code_id: uuid.UUID, code: str, *, settings: UsersSettings | None = None) -> str:
    """HMAC-SHA256 (hex) of a verification code, salted by its id; what is stored."""
    settings = settings or get_users_settings()
    key = settings.verification_token_secret.encode()
    return hmac.new(key, f"{code_id}:{code}".encode(), hashlib.sha256).hexdigest()
