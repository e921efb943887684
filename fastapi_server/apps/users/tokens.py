"""JWTs of the users app: one audience, lifetime and ``typ`` per kind, HS256 only.

Kinds: ``access`` (Bearer), ``refresh`` (rotated, server-side state), ``verification``
(names a stored code, never carries it) and ``reset`` (bound to the password hash in
force). Decoding accepts only HS256 (so ``alg: none`` and every other algorithm are
refused), the kind's audience and ``typ``, and an unexpired ``exp``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
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


def key_id(secret: str) -> str:
    """The ``kid`` header of tokens signed with ``secret``: 8 hex of its SHA-256, which
    names the key without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _secret_for_token(kind: TokenKind, token: str, settings: UsersSettings) -> str:
    """The secret that must have signed ``token`` (``_pick``); only access and refresh
    tokens may name USERS_JWT_SECRET_PREVIOUS."""
    signs_sessions = kind in (TokenKind.ACCESS, TokenKind.REFRESH)
    previous = settings.jwt_secret_previous if signs_sessions else ""
    return _pick(token, _secret(kind, settings), previous)


def _pick(token: str, current: str, previous: str) -> str:
    """``current`` when the token's ``kid`` names it (or it has none: tokens from before
    key ids), ``previous`` when it names that one; ``InvalidToken`` otherwise."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if kid is None or kid == key_id(current):
        return current
    if previous and kid == key_id(previous):
        return previous
    raise InvalidToken("unknown key id")


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
    secret = _secret(kind, settings)
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})
    return IssuedToken(token, lifetime)


def decode(kind: TokenKind, token: str, *, settings: UsersSettings | None = None) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; ``InvalidToken`` otherwise.

    Access tokens are checked on every authenticated request, and a client sends the
    same one until it expires: a verified one is remembered (per process, the last
    ``VERIFIED_ACCESS_TOKENS``) with its claims, and then only its expiry is checked
    again. Revocation is not affected: it is read from the user's row on each request.
    """
    settings = settings or get_users_settings()
    if kind is not TokenKind.ACCESS:
        return _verified_claims(kind, token, _secret_for_token(kind, token, settings))
    claims = _verified_access_claims(token, settings.jwt_secret, settings.jwt_secret_previous)
    if claims["exp"] <= time.time():  # as PyJWT decides it, without leeway
        raise InvalidToken("Signature has expired")
    return dict(claims)  # the caller's own copy


VERIFIED_ACCESS_TOKENS = 2048


@functools.lru_cache(maxsize=VERIFIED_ACCESS_TOKENS)
def _verified_access_claims(token: str, secret: str, previous: str) -> dict[str, Any]:
    """Only successes are remembered (a raised error is not), keyed by the secrets too."""
    return _verified_claims(TokenKind.ACCESS, token, _pick(token, secret, previous))


def _verified_claims(kind: TokenKind, token: str, secret: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
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


def pseudonym(value: str, *, settings: UsersSettings | None = None) -> str:
    """A keyed hash (32 hex) of ``value`` ignoring case: names an email in logs and rate
    limit counters without revealing it to their readers (keyed by USERS_JWT_SECRET)."""
    settings = settings or get_users_settings()
    key = hmac.new(settings.jwt_secret.encode(), b"pseudonym", hashlib.sha256).digest()
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]
