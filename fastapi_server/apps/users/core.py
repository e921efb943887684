"""The users rules: registration, verification, login, tokens, passwords, administration.

Functions take a ``Databases`` (one transaction, never committed here) and raise the
domain errors of ``errors.py``. The API, the ops scripts and the tests call them alike.
Errors marked ``KeepsChanges`` (failed logins, wrong codes, refresh token reuse) leave
bookkeeping that the caller must commit even though the call failed.
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from email_validator import EmailNotValidError, validate_email

from fastapi_server.apps.notifications import core as notifications
from fastapi_server.apps.users import passwords, tokens
from fastapi_server.apps.users.errors import (
    InvalidEmail,
    InvalidPassword,
    LoginBadCredentials,
    LoginUserLocked,
    LoginUserNotVerified,
    NotAuthenticated,
    RefreshTokenInvalid,
    RegisterInvalidEmail,
    RegisterInvalidPassword,
    ResetPasswordBadToken,
    ResetPasswordInvalidPassword,
    UserAlreadyExists,
    UserNotFound,
    VerifyAlreadyVerified,
    VerifyBadToken,
    VerifyTooManyRequests,
)
from fastapi_server.apps.users.models import EMAIL_MAX_LENGTH, User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.apps.users.tokens import InvalidToken, TokenKind
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.databases import Databases

logger = logging.getLogger(__name__)

CODE_DIGITS = 6

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_token_expiration: int
    refresh_token_expiration: int


@dataclass(frozen=True)
class VerificationRequest:
    verification_token: str
    registration_code: str  # for the dev/test switch only; production emails it


# --- helpers --------------------------------------------------------------------------


def _hashes(func: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """Run ``func`` in a hashing turn (``passwords.hashing_turn``), taken before its
    first query: queued behind the hashing threads, it holds no database connection."""

    @functools.wraps(func)
    async def in_a_hashing_turn(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        async with passwords.hashing_turn():
            return await func(*args, **kwargs)

    return in_a_hashing_turn


def check_password(password: str, error: type[AppError]) -> None:
    """Raise ``error(reason=...)`` when ``password`` breaks the policy."""
    reason = passwords.password_problem(password)
    if reason is not None:
        raise error(f"The password is rejected: {reason}.", reason=reason)


def normalize_email(email: str) -> str:
    """A syntactically valid address (domain lowercased), or ``InvalidEmail``.

    The form the API's schemas give (``EmailStr``) and the one stored; lookups take it
    too, so a domain typed in capitals (even non-ASCII ones) finds its account.
    """
    try:
        return _normalized(email.strip())
    except EmailNotValidError as exc:
        raise InvalidEmail(f"Not a valid email address: {email!r}.") from exc


@functools.lru_cache(maxsize=4096)
def _normalized(email: str) -> str:
    """email-validator's normal form; remembered, as every login asks it (about 0.1 ms)."""
    normalized: str = validate_email(email, check_deliverability=False).normalized
    return normalized


def check_deliverable(email: str, error: type[AppError]) -> None:
    """Raise ``error`` unless the notifications app can send to ``email``.

    An account whose address cannot get the verification code would be stuck (today:
    non-ASCII before the @, which needs SMTPUTF8).
    """
    try:
        notifications.checked_address(email)
    except ValueError as exc:
        raise error(f"We cannot send email to {email!r}.") from exc


async def _send(dbs: Databases, template: str, user: User, context: dict[str, Any]) -> None:
    """Queue an email in the caller's transaction (sent only once it commits)."""
    try:
        notifications.checked_address(user.email)
    except ValueError:  # stored before registration checked it (psql, an import)
        logger.warning("email not queued: address refused", extra={"user_id": str(user.id)})
        return
    await notifications.enqueue(
        dbs,
        template=template,
        to_email=user.email,
        to_name=f"{user.first_name} {user.last_name}".strip(),
        context=context,
    )


def _password_fingerprint(user: User) -> str:
    return tokens.fingerprint(user.hashed_password)


# --- registration and verification ---------------------------------------------------


@_hashes
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
        password_fingerprint=_password_fingerprint(user),
        expires_on=now + timedelta(seconds=lifetime),
    )
    issued = tokens.encode(TokenKind.VERIFICATION, user.id, {"jti": str(code_id)})
    context = {"first_name": user.first_name, "code": code, "expires_minutes": lifetime // 60}
    await _send(dbs, "registration_code", user, context)
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
    if not hmac.compare_digest(row.password_fingerprint, _password_fingerprint(user)):
        raise VerifyBadToken(reason="PASSWORD_CHANGED")
    if not hmac.compare_digest(row.code_hmac, tokens.code_hmac(row.id, code)):
        attempts = row.attempts + 1
        await dbs.users.save_code(row, attempts=attempts)
        left = max(settings.verification_max_attempts - attempts, 0)
        raise VerifyBadToken(reason="WRONG_CODE", attempts_left=left)
    await dbs.users.save_code(row, used_on=now)
    await dbs.users.save(user, is_verified=True, verified_on=now)
    await _send(dbs, "welcome", user, {"first_name": user.first_name})  # links to /login
    logger.info("user verified", extra={"user_id": str(user.id)})
    return user


# --- login and tokens ---------------------------------------------------------------


@_hashes
async def login(dbs: Databases, *, email: str, password: str) -> TokenPair:
    """Tokens for an active, verified user with this password; counts failures, locks.

    Unknown emails cost a dummy verify and answer like a wrong password. The user's row
    is locked first, so concurrent attempts on one account take turns and each sees the
    failures counted before it: no burst gets more tries than the lockout allows. Every
    attempt is logged (never the password).
    """
    settings = get_users_settings()
    log = {"email": email[:EMAIL_MAX_LENGTH]}
    found = await _user_to_log_in(dbs, email)
    if found is None:
        await passwords.burn_a_verify(password)
        logger.warning("login failed", extra={**log, "reason": "unknown_email"})
        raise LoginBadCredentials()
    user, now = found
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
    return await _issue_pair(dbs, user, family_id=uuid.uuid4())


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


async def _issue_pair(dbs: Databases, user: User, *, family_id: uuid.UUID) -> TokenPair:
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
    )
    return TokenPair(access.token, refresh.token, access.lifetime_seconds, refresh.lifetime_seconds)


async def refresh_tokens(dbs: Databases, token: str) -> TokenPair:
    """A new pair for a live refresh token, which is used up (rotation).

    Presenting a refresh token that was already used means it was copied: the whole
    family (every token rotated from that login) is revoked.
    """
    try:
        claims = tokens.decode(TokenKind.REFRESH, token)
        jti = uuid.UUID(str(claims.get("jti")))
    except (InvalidToken, ValueError) as exc:
        raise RefreshTokenInvalid() from exc
    row = await dbs.users.refresh_token_for_update(jti)
    if row is None or row.revoked_on is not None or row.user_id != claims["sub"]:
        raise RefreshTokenInvalid()
    if row.used_on is not None:
        await dbs.users.revoke_refresh_family(row.family_id)
        logger.warning(
            "refresh token reused; family revoked",
            extra={"user_id": str(row.user_id), "family_id": str(row.family_id)},
        )
        raise RefreshTokenInvalid()
    user = await dbs.users.get(row.user_id)
    if user is None or not _token_still_valid(user, claims):
        raise RefreshTokenInvalid()
    await dbs.users.mark_refresh_token_used(row, await dbs.users.now())
    return await _issue_pair(dbs, user, family_id=row.family_id)


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


# --- passwords ------------------------------------------------------------------------


async def forgot_password(dbs: Databases, email: str) -> str:
    """Queue a reset link for an active user; the same answer for any email.

    Returns the reset token (a decoy for unknown or inactive emails), which the API
    hands out only under the dev/test switch.
    """
    settings = get_users_settings()
    user = await dbs.users.get_by_email(email)
    if user is None or not user.is_active:
        logger.info("password reset requested for no active account")
        return tokens.encode(TokenKind.RESET, uuid.uuid4(), {"pfp": secrets.token_hex(32)}).token
    issued = tokens.encode(TokenKind.RESET, user.id, {"pfp": _password_fingerprint(user)})
    reset_url = notifications.app_link(
        settings.reset_password_path, token=issued.token, email=user.email
    )
    context = {
        "first_name": user.first_name,
        "reset_url": reset_url,
        "expires_minutes": issued.lifetime_seconds // 60,
    }
    await _send(dbs, "reset_password", user, context)
    logger.info("password reset requested", extra={"user_id": str(user.id)})
    return issued.token


@_hashes
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
        or not hmac.compare_digest(str(claims.get("pfp", "")), _password_fingerprint(user))
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
    await _send(dbs, "password_changed", user, {"first_name": user.first_name})


# --- profile and administration ------------------------------------------------------


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


async def list_users(dbs: Databases, *, page: int, page_size: int) -> tuple[Sequence[User], int]:
    """One page of users (1-based) and the total count."""
    total = await dbs.users.count()
    users = await dbs.users.page(offset=(page - 1) * page_size, limit=page_size)
    return users, total


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


@_hashes
async def set_password(dbs: Databases, email: str, password: str) -> User:
    """Give an account a new password (policy checked) and re-activate it (ops)."""
    user = await dbs.users.get_by_email(normalize_email(email), for_update=True)
    if user is None:
        raise UserNotFound(f"no user has the email {email}")
    check_password(password, InvalidPassword)
    await _set_password(dbs, user, password, is_active=True)
    return await dbs.users.refresh(user)


@_hashes
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
