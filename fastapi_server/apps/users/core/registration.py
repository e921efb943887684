"""Registration and email verification."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
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
    queue_password_link,
)
from fastapi_server.apps.users.errors import (
    RegisterInvalidEmail,
    RegisterInvalidPassword,
    VerifyAlreadyVerified,
    VerifyBadToken,
    VerifyInvalidPassword,
    VerifyTooManyRequests,
)
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.apps.users.tokens import InvalidToken, TokenKind
from fastapi_server.resources.database.databases import Databases

CODE_DIGITS = 6


@dataclass(frozen=True)
class Registration:
    """What a registration answers: the same fields for a new and an existing address."""

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str


@hashes
async def register(
    dbs: Databases, *, email: str, password: str, first_name: str, last_name: str
) -> Registration:
    """A new unverified user; for an address that has an account, the same answer.

    Registering again never changes an existing account (verified or not): its owner
    is emailed instead, and the answer carries a fresh id, as a first registration's
    does. An existing account costs one password verify, a new one one hash: the same
    work. A different password on a still unverified account marks it contested:
    verification then keeps no password the verifier did not type (``verify``).
    """
    check_deliverable(email, RegisterInvalidEmail)
    check_password(password, RegisterInvalidPassword)
    existing = await dbs.users.get_by_email(email, for_update=True)
    if existing is None:
        hashed = await passwords.hash_password(password)
        user_id = await dbs.users.insert_unverified(
            email=email, first_name=first_name, last_name=last_name, hashed_password=hashed
        )
        if user_id is not None:
            logger.info("user registered", extra={"user_id": str(user_id)})
            return Registration(user_id, email, first_name, last_name)
        existing = await dbs.users.get_by_email(email, for_update=True)  # registered meanwhile
        if existing is None:  # pragma: no cover -- an insert that conflicted then vanished
            raise RegisterInvalidEmail()
    else:
        same, _ = await passwords.verify_password(password, existing.hashed_password)
        if not same and not existing.is_verified and existing.registration_contested_on is None:
            await dbs.users.save(existing, registration_contested_on=await dbs.users.now())
    await queue_email(dbs, "registration_attempt", existing, {"first_name": existing.first_name})
    logger.info("registration of an existing address", extra={"user_id": str(existing.id)})
    return Registration(uuid.uuid4(), email, first_name, last_name)


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
        raise VerifyTooManyRequests(retry_after=3600)
    await dbs.users.delete_old_codes(user.id, now - timedelta(days=1))
    await dbs.users.supersede_open_codes(user.id)
    lifetime = tokens.lifetime_seconds(TokenKind.VERIFICATION)
    await dbs.users.add_verification_code(
        code_id=code_id,
        user_id=user.id,
        code_hmac=tokens.code_hmac(code_id, code),
        password_fingerprint=password_fingerprint(user),
        expires_on=now + timedelta(seconds=lifetime),
        keeps_password=user.registration_contested_on is None,
    )
    issued = tokens.encode(TokenKind.VERIFICATION, user.id, {"jti": str(code_id)})
    context = {"first_name": user.first_name, "code": code, "expires_minutes": lifetime // 60}
    await queue_email(dbs, "registration_code", user, context, secrets_lifetime_seconds=lifetime)
    return VerificationRequest(issued.token, code)


def verification_subject(token: str) -> str | None:
    """The account a valid verification token names (for rate limits), else None."""
    try:
        return str(tokens.decode(TokenKind.VERIFICATION, token)["sub"])
    except InvalidToken:
        return None


async def verify(dbs: Databases, *, token: str, code: str, password: str | None = None) -> User:
    """Mark the account verified if ``code`` is the one the token names.

    Single use, expires, bound to the password in force when the code was requested,
    compared in constant time, at most ``USERS_VERIFICATION_MAX_ATTEMPTS`` wrong tries.

    Whoever verifies proves they own the mailbox, not that they typed the account's
    password: with ``password`` the account gets it; without, it keeps its password
    only if nobody had registered the address again with another one when the code was
    requested. Otherwise it is verified with no usable password, and its owner is
    emailed a link to set one.
    """
    settings = get_users_settings()
    new_hash = None
    if password is not None:
        check_password(password, VerifyInvalidPassword)
        async with passwords.hashing_turn():  # before the first query: no connection held
            new_hash = await passwords.hash_password(password)
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
    contested = not row.keeps_password  # someone else may have typed the password
    if new_hash is None and contested:
        new_hash = passwords.UNUSABLE_PREFIX + secrets.token_urlsafe(32)
    changes: dict[str, object] = {
        "is_verified": True,
        "verified_on": now,
        "registration_contested_on": None,
    }
    if new_hash is not None:
        changes["hashed_password"] = new_hash
    await dbs.users.save(user, **changes)
    if new_hash is not None:
        await dbs.users.bump_token_version(user)
    if contested and password is None:
        await queue_password_link(dbs, user)
    else:
        await queue_email(dbs, "welcome", user, {"first_name": user.first_name})  # /login
    logger.info("user verified", extra={"user_id": str(user.id), "contested": contested})
    return user
