"""Forgotten and reset passwords, the profile, and the ops' account commands."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi_server.apps.users import passwords, tokens
from fastapi_server.apps.users.core.common import (
    check_deliverable,
    check_password,
    hashes,
    logger,
    normalize_email,
    password_fingerprint,
    queue_email,
    queue_password_link,
)
from fastapi_server.apps.users.errors import (
    InvalidEmail,
    InvalidPassword,
    ResetPasswordBadToken,
    ResetPasswordInvalidPassword,
    UserNotFound,
)
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.schemas import UserOrder
from fastapi_server.apps.users.tokens import InvalidToken, TokenKind
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.databases import Databases


async def forgot_password(dbs: Databases, email: str) -> str:
    """Queue a reset link for an active user; the same answer for any email.

    Returns the reset token (a decoy for unknown or inactive emails), which the API
    hands out only under the dev/test switch.
    """
    user = await dbs.users.get_by_email(email)
    if user is None or not user.is_active:
        logger.info("password reset requested for no active account")
        return tokens.encode(TokenKind.RESET, uuid.uuid4(), {"pfp": secrets.token_hex(32)}).token
    token = await queue_password_link(dbs, user)
    logger.info("password reset requested", extra={"user_id": str(user.id)})
    return token


@hashes
async def reset_password(dbs: Databases, *, email: str, token: str, password: str) -> User:
    """Set a new password with a reset token issued for this email's user.

    The token works once (bound to the password hash it was issued under) and every
    token issued before the reset stops working.
    """
    try:
        claims = tokens.decode(TokenKind.RESET, token)
    except InvalidToken as exc:
        raise ResetPasswordBadToken() from exc
    user = await dbs.users.get_by_email(email, for_update=True)
    if (
        user is None
        or user.id != claims["sub"]
        or not user.is_active
        or not hmac.compare_digest(str(claims.get("pfp", "")), password_fingerprint(user))
    ):
        raise ResetPasswordBadToken()
    check_password(password, ResetPasswordInvalidPassword)
    await _set_password(dbs, user, password)
    logger.info("password reset", extra={"user_id": str(user.id)})
    return user


async def _set_password(dbs: Databases, user: User, password: str, **changes: Any) -> None:
    """New hash, old tokens dead, lock cleared, and a "password changed" email."""
    await dbs.users.save(
        user,
        hashed_password=await passwords.hash_password(password),
        login_failed_count=0,
        locked_until=None,
        **changes,
    )
    await dbs.users.bump_token_version(user)
    await dbs.users.revoke_user_refresh_tokens(user.id)
    await queue_email(dbs, "password_changed", user, {"first_name": user.first_name})


async def update_profile(
    dbs: Databases, user: User, *, first_name: str | None, last_name: str | None
) -> User:
    """Change the user's own names (None: keep)."""
    changes = {
        name: value
        for name, value in (("first_name", first_name), ("last_name", last_name))
        if value is not None
    }
    return await dbs.users.save(user, **changes)


async def list_users(dbs: Databases, request: PageRequest[UserOrder]) -> tuple[Sequence[User], int]:
    """One page of users in the requested order, and how many there are."""
    return await dbs.users.page(request)


async def find_active_user(dbs: Databases, email: str) -> User | None:
    """The active account with this email (any case), or None (other apps use this to
    name a user by email)."""
    user = await dbs.users.get_by_email(email)
    return user if user is not None and user.is_active else None


@dataclass(frozen=True)
class Activation:
    """An account after ``activate_user``, and what it was before."""

    user: User
    was_active: bool
    failed_logins_before: int


async def activate_user(dbs: Databases, email: str) -> Activation:
    """Re-activate an account and clear its failed logins and lock (ops)."""
    user = await dbs.users.get_by_email(normalize_email(email), for_update=True)
    if user is None:
        raise UserNotFound(f"no user has the email {email}")
    was_active, failures = user.is_active, user.login_failed_count
    await dbs.users.save(user, is_active=True, login_failed_count=0, locked_until=None)
    return Activation(await dbs.users.refresh(user), was_active, failures)


@hashes
async def set_password(dbs: Databases, email: str, password: str) -> User:
    """Give an account a new password (policy checked) and re-activate it (ops)."""
    user = await dbs.users.get_by_email(normalize_email(email), for_update=True)
    if user is None:
        raise UserNotFound(f"no user has the email {email}")
    check_password(password, InvalidPassword)
    await _set_password(dbs, user, password, is_active=True)
    return await dbs.users.refresh(user)


@hashes
async def create_superuser(
    dbs: Databases, *, email: str, password: str, first_name: str, last_name: str
) -> tuple[User, bool]:
    """Make ``email`` an active, verified superuser with this password; create if missing.

    Returns ``(user, created)``. Running it again with the same password changes
    nothing else (so automation may run it at every deploy without logging anyone out).
    """
    check_password(password, InvalidPassword)
    email = normalize_email(email)
    check_deliverable(email, InvalidEmail)
    user = await dbs.users.get_by_email(email, for_update=True)
    if user is None:
        user = await dbs.users.create(
            email=email,
            first_name=first_name,
            last_name=last_name,
            hashed_password=await passwords.hash_password(password),
            is_active=True,
            is_verified=True,
            is_superuser=True,
            verified_on=await dbs.users.now(),
        )
        return user, True
    flags: dict[str, Any] = {"is_active": True, "is_verified": True, "is_superuser": True}
    if user.verified_on is None:
        flags["verified_on"] = await dbs.users.now()
    matches, _ = await passwords.verify_password(password, user.hashed_password)
    if matches:
        await dbs.users.save(user, **flags)
    else:
        await _set_password(dbs, user, password, **flags)
    return await dbs.users.refresh(user), False
