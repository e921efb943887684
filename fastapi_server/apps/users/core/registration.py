"""Registration and email verification."""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import timedelta

from fastapi_server.apps.users import passwords, tokens
from fastapi_server.apps.users.core.common import (
    VerificationRequest,
    check_deliverable,
    check_password,
    hashes,
    logger,
    password_fingerprint,
    queue_email,
)
from fastapi_server.apps.users.errors import (
    RegisterInvalidEmail,
    RegisterInvalidPassword,
    UserAlreadyExists,
    VerifyAlreadyVerified,
    VerifyBadToken,
    VerifyTooManyRequests,
)
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.apps.users.tokens import InvalidToken, TokenKind
from fastapi_server.resources.database.databases import Databases

CODE_DIGITS = 6


@hashes
async def register(
    dbs: Databases, *, email: str, password: str, first_name: str, last_name: str
) -> User:
    """A new unverified user, or the same unverified user with new names and password.

    A verified email answers ``UserAlreadyExists``. Replacing the password of an
    unverified account kills its pending codes (they are bound to the old hash).
    """
    check_deliverable(email, RegisterInvalidEmail)
    check_password(password, RegisterInvalidPassword)
    if await _verified_user_exists(dbs, email):  # spare the hashing work
        raise UserAlreadyExists()
    hashed = await passwords.hash_password(password)
    user_id = await dbs.users.register_unverified(
        email=email, first_name=first_name, last_name=last_name, hashed_password=hashed
    )
    if user_id is None:  # verified meanwhile
        raise UserAlreadyExists()
    user = await dbs.users.get(user_id)
    assert user is not None
    logger.info("user registered", extra={"user_id": str(user.id), "email": user.email})
    return user


async def _verified_user_exists(dbs: Databases, email: str) -> bool:
    user = await dbs.users.get_by_email(email)
    return user is not None and user.is_verified


async def request_verification(dbs: Databases, email: str) -> VerificationRequest:
    """Email a fresh 6-digit code; hand back a token naming it (not containing it).

    Unknown, verified and inactive emails get a decoy token that nothing accepts, so
    the answer does not tell whether an account waits for verification.
    """
    settings = get_users_settings()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    code_id = uuid.uuid4()
    user = await dbs.users.get_by_email(email, for_update=True)
    if user is None or user.is_verified or not user.is_active:
        decoy = tokens.encode(TokenKind.VERIFICATION, uuid.uuid4(), {"jti": str(code_id)})
        return VerificationRequest(decoy.token, code)
    now = await dbs.users.now()
    if (
        await dbs.users.codes_requested_since(user.id, now - timedelta(hours=1))
        >= settings.verification_codes_per_hour
    ):
        raise VerifyTooManyRequests()
    await dbs.users.delete_old_codes(user.id, now - timedelta(days=1))
    await dbs.users.supersede_open_codes(user.id)
    lifetime = tokens.lifetime_seconds(TokenKind.VERIFICATION)
    await dbs.users.add_verification_code(
        code_id=code_id,
        user_id=user.id,
        code_hmac=tokens.code_hmac(code_id, code),
        password_fingerprint=password_fingerprint(user),
        expires_on=now + timedelta(seconds=lifetime),
    )
    issued = tokens.encode(TokenKind.VERIFICATION, user.id, {"jti": str(code_id)})
    context = {"first_name": user.first_name, "code": code, "expires_minutes": lifetime // 60}
    await queue_email(dbs, "registration_code", user, context)
    return VerificationRequest(issued.token, code)


async def verify(dbs: Databases, *, token: str, code: str) -> User:
    """Mark the account verified if ``code`` is the one the token names.

    Single use, expires, bound to the password in force when the code was requested,
    compared in constant time, at most ``USERS_VERIFICATION_MAX_ATTEMPTS`` wrong tries.
    """
    settings = get_users_settings()
    try:
        claims = tokens.decode(TokenKind.VERIFICATION, token)
        code_id = uuid.UUID(str(claims.get("jti")))
    except (InvalidToken, ValueError) as exc:
        raise VerifyBadToken(reason="INVALID_TOKEN") from exc
    row = await dbs.users.verification_code_for_update(code_id)
    user = await dbs.users.get(claims["sub"], for_update=True) if row else None
    if row is None or user is None or row.user_id != user.id or not user.is_active:
        raise VerifyBadToken(reason="INVALID_TOKEN")
    if user.is_verified:
        raise VerifyAlreadyVerified()
    now = await dbs.users.now()
    if row.used_on is not None:
        raise VerifyBadToken(reason="USED")
    if row.expires_on <= now:
        raise VerifyBadToken(reason="EXPIRED")
    if row.attempts >= settings.verification_max_attempts:
        raise VerifyBadToken(reason="TOO_MANY_ATTEMPTS")
    if not hmac.compare_digest(row.password_fingerprint, password_fingerprint(user)):
        raise VerifyBadToken(reason="PASSWORD_CHANGED")
    if not hmac.compare_digest(row.code_hmac, tokens.code_hmac(row.id, code)):
        attempts = row.attempts + 1
        await dbs.users.save_code(row, attempts=attempts)
        left = max(settings.verification_max_attempts - attempts, 0)
        raise VerifyBadToken(reason="WRONG_CODE", attempts_left=left)
    await dbs.users.save_code(row, used_on=now)
    await dbs.users.save(user, is_verified=True, verified_on=now)
    await queue_email(dbs, "welcome", user, {"first_name": user.first_name})  # links to /login
    logger.info("user verified", extra={"user_id": str(user.id)})
    return user
