"""Login, access and refresh tokens, logout."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi_server.apps.users import passwords, tokens
from fastapi_server.apps.users.core.common import (
    TokenPair,
    hashes,
    logger,
    normalize_email,
    pseudonym,
)
from fastapi_server.apps.users.errors import (
    InvalidEmail,
    LoginBadCredentials,
    LoginUserLocked,
    LoginUserNotVerified,
    NotAuthenticated,
    RefreshTokenInvalid,
)
from fastapi_server.apps.users.models import EMAIL_MAX_LENGTH, RefreshToken, User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.apps.users.tokens import InvalidToken, TokenKind
from fastapi_server.resources.database.databases import Databases


@hashes
async def login(dbs: Databases, *, email: str, password: str) -> TokenPair:
    """Tokens for an active, verified user with this password; counts failures, locks.

    Unknown emails cost a dummy verify and answer like a wrong password. The user's row
    is locked first, so concurrent attempts on one account take turns and each sees the
    failures counted before it: no burst gets more tries than the lockout allows. Every
    attempt is logged (never the password).
    """
    settings = get_users_settings()
    found = await _user_to_log_in(dbs, email)
    if found is None:
        await passwords.burn_a_verify(password)
        # Not the raw username: it may be anything typed there, a password included.
        extra = {"email_hash": pseudonym(email), "reason": "unknown_email"}
        logger.warning("login failed", extra=extra)
        raise LoginBadCredentials()
    user, now = found
    log = {"email": user.email[:EMAIL_MAX_LENGTH]}
    log["user_id"] = str(user.id)
    if user.locked_until is not None and user.locked_until > now:
        await passwords.burn_a_verify(password)  # answers no faster than an attempt would
        retry_after = math.ceil((user.locked_until - now).total_seconds())
        logger.warning("login refused", extra={**log, "reason": "locked"})
        raise LoginUserLocked(retry_after=retry_after)
    matches, new_hash = await passwords.verify_password(password, user.hashed_password)
    if not matches:
        failures, locked_until = await dbs.users.record_login_failure(
            user.id,
            max_failures=settings.max_failed_logins,
            lockout_seconds=settings.lockout_seconds,
            cap_seconds=settings.lockout_max_seconds,
            decay_seconds=settings.login_failure_decay_seconds,
        )
        reason = {"reason": "bad_password", "failures": failures, "locked": bool(locked_until)}
        logger.warning("login failed", extra={**log, **reason})
        raise LoginBadCredentials()
    if not user.is_active:
        logger.warning("login failed", extra={**log, "reason": "inactive"})
        raise LoginBadCredentials()
    if not user.is_verified:
        logger.warning("login failed", extra={**log, "reason": "not_verified"})
        raise LoginUserNotVerified()
    changes: dict[str, Any] = {"login_failed_count": 0, "locked_until": None, "last_login": now}
    if new_hash is not None:
        changes["hashed_password"] = new_hash  # bcrypt or old argon2 parameters
    await dbs.users.save(user, **changes)
    logger.info("login succeeded", extra={**log, "rehashed": new_hash is not None})
    # The user's row is locked: dropping the long-expired tokens here cannot deadlock
    # with another request's (a refresh inserts its token without dropping any).
    return await _issue_pair(dbs, user, family_id=uuid.uuid4(), drop_expired=True)


async def _user_to_log_in(dbs: Databases, email: str) -> tuple[User, datetime] | None:
    """The user ``email`` names, its row locked, and the database's clock; None for an
    unknown or malformed email."""
    try:
        email = normalize_email(email)
    except InvalidEmail:
        return None  # not an address at all (a NUL byte...): answered like an unknown one
    return await dbs.users.get_by_email_locked(email)


def access_token(user: User, *, now: datetime | None = None) -> tokens.IssuedToken:
    """An access token for ``user`` (claims ``user_id``, ``email``, ``first_name``, ``exp``)."""
    claims = {
        "user_id": str(user.id),
        "email": user.email,
        "first_name": user.first_name,
        "ver": user.token_version,
    }
    return tokens.encode(TokenKind.ACCESS, user.id, claims, now=now)


async def _issue_pair(
    dbs: Databases, user: User, *, family_id: uuid.UUID, drop_expired: bool = False
) -> TokenPair:
    now = datetime.now(UTC)
    access = access_token(user, now=now)
    jti = uuid.uuid4()
    refresh = tokens.encode(
        TokenKind.REFRESH,
        user.id,
        {"jti": str(jti), "fam": str(family_id), "ver": user.token_version},
        now=now,
    )
    await dbs.users.add_refresh_token(
        jti=jti,
        user_id=user.id,
        family_id=family_id,
        expires_on=now + timedelta(seconds=refresh.lifetime_seconds),
        drop_expired=drop_expired,
    )
    return TokenPair(access.token, refresh.token, access.lifetime_seconds, refresh.lifetime_seconds)


async def refresh_tokens(dbs: Databases, token: str) -> TokenPair:
    """A new pair for a live refresh token, which is used up (rotation).

    Presenting a refresh token that was already used means it was copied: the whole
    family (every token rotated from that login) is revoked, and the user's access
    tokens die too (``token_version``). Except within ``USERS_REFRESH_REUSE_GRACE_SECONDS``
    of its rotation: two browser tabs refreshing at once both send the same token, and
    the second one gets a fresh pair of the same family.
    """
    try:
        claims = tokens.decode(TokenKind.REFRESH, token)
        jti = uuid.UUID(str(claims.get("jti")))
    except (InvalidToken, ValueError) as exc:
        raise RefreshTokenInvalid() from exc
    row = await dbs.users.refresh_token_for_update(jti)
    if row is None or row.revoked_on is not None or row.user_id != claims["sub"]:
        raise RefreshTokenInvalid()
    user = await dbs.users.get(row.user_id)
    now = await dbs.users.now()
    if row.used_on is not None:
        grace = timedelta(seconds=get_users_settings().refresh_reuse_grace_seconds)
        if now - row.used_on <= grace and user is not None and _token_still_valid(user, claims):
            logger.info("refresh token reused within the grace period", extra=_family(row))
            return await _issue_pair(dbs, user, family_id=row.family_id)
        await dbs.users.revoke_refresh_family(row.family_id)
        if user is not None:
            await dbs.users.bump_token_version(user)  # the thief's access token dies too
        logger.warning("refresh token reused; family revoked", extra=_family(row))
        raise RefreshTokenInvalid()
    if user is None or not _token_still_valid(user, claims):
        raise RefreshTokenInvalid()
    await dbs.users.mark_refresh_token_used(row, now)
    return await _issue_pair(dbs, user, family_id=row.family_id)


def _family(row: RefreshToken) -> dict[str, str]:
    return {"user_id": str(row.user_id), "family_id": str(row.family_id)}


def _token_still_valid(user: User, claims: dict[str, Any]) -> bool:
    """Active, verified, and issued after the last reset/logout/deactivation."""
    return user.is_active and user.is_verified and claims.get("ver") == user.token_version


@dataclass(frozen=True)
class Caller:
    """Who an access token names, read from the token alone (no database lookup)."""

    id: uuid.UUID
    email: str


def caller_from_access_token(token: str) -> Caller:
    """The identity in a valid access token, or ``NotAuthenticated``.

    Signature, audience, kind and expiry are checked; revocation (logout, password
    reset, deactivation) is not, since that needs the user's row: use it only where a
    token that was revoked a moment ago may still read something harmless until it
    expires (feature flag evaluation), never to authorise a change.
    """
    try:
        claims = tokens.decode(TokenKind.ACCESS, token)
        return Caller(id=uuid.UUID(str(claims["sub"])), email=str(claims.get("email", "")))
    except (InvalidToken, KeyError, ValueError) as exc:
        raise NotAuthenticated() from exc


async def user_from_access_token(dbs: Databases, token: str) -> User:
    """The active user an access token names, or ``NotAuthenticated``."""
    try:
        claims = tokens.decode(TokenKind.ACCESS, token)
        user_id = uuid.UUID(str(claims["sub"]))
    except (InvalidToken, KeyError, ValueError) as exc:
        raise NotAuthenticated() from exc
    user = await dbs.users.get_caller(user_id)
    if user is None or not _token_still_valid(user, claims):
        raise NotAuthenticated()
    return user


async def logout(dbs: Databases, user: User) -> None:
    """End every session of the user: refresh tokens revoked, access tokens outdated."""
    await dbs.users.revoke_user_refresh_tokens(user.id)
    await dbs.users.bump_token_version(user)
    logger.info("user logged out", extra={"user_id": str(user.id)})


async def locked_account_count(dbs: Databases) -> int:
    """How many accounts are locked out of logging in right now."""
    return await dbs.users.count_locked()
