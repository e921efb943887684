"""What the users rules share: results, the hashing turn, email and password checks."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from email_validator import EmailNotValidError, validate_email

from fastapi_server.apps.notifications import core as notifications
from fastapi_server.apps.users import passwords, tokens
from fastapi_server.apps.users.errors import InvalidEmail
from fastapi_server.apps.users.models import User
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.apps.users.tokens import TokenKind
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.databases import Databases

# One logger for all the users rules, named after the package (what log filters use).
logger = logging.getLogger("fastapi_server.apps.users.core")

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


def hashes(func: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
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
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(f"Not a valid email address: {email!r}.") from exc


def check_deliverable(email: str, error: type[AppError]) -> None:
    """Raise ``error`` unless the notifications app can send to ``email``.

    An account whose address cannot get the verification code would be stuck (today:
    non-ASCII before the @, which needs SMTPUTF8).
    """
    try:
        notifications.checked_address(email)
    except ValueError as exc:
        raise error(f"We cannot send email to {email!r}.") from exc


async def queue_email(
    dbs: Databases,
    template: str,
    user: User,
    context: dict[str, Any],
    *,
    secrets_lifetime_seconds: int | None = None,
) -> None:
    """Queue an email in the caller's transaction (sent only once it commits).

    An unverified address gets no names: whoever registered it typed them, and they
    may not be its owner's (no greeting by name, no display name).
    """
    try:
        notifications.checked_address(user.email)
    except ValueError:  # stored before registration checked it (psql, an import)
        logger.warning("email not queued: address refused", extra={"user_id": str(user.id)})
        return
    to_name = f"{user.first_name} {user.last_name}".strip()
    if not user.is_verified:
        to_name, context = "", {**context, "first_name": ""}
    await notifications.enqueue(
        dbs,
        template=template,
        to_email=user.email,
        to_name=to_name,
        context=context,
        secrets_lifetime_seconds=secrets_lifetime_seconds,
    )


def reset_link(token: str) -> str:
    """The front end's reset page with ``token`` in the query string (where the web
    client reads it): ``{APP_URL}/forgot-password/reset?reset_token=<token>`` by default."""
    settings = get_users_settings()
    return notifications.app_link(
        settings.reset_password_path, **{settings.reset_password_token_parameter: token}
    )


async def queue_password_link(dbs: Databases, user: User) -> str:
    """Email ``user`` a link to choose a new password; the reset token it carries."""
    issued = tokens.encode(TokenKind.RESET, user.id, {"pfp": password_fingerprint(user)})
    context = {
        "first_name": user.first_name,
        "reset_url": reset_link(issued.token),
        "expires_minutes": issued.lifetime_seconds // 60,
    }
    await queue_email(
        dbs,
        "reset_password",
        user,
        context,
        secrets_lifetime_seconds=issued.lifetime_seconds,
    )
    return issued.token


def pseudonym(value: str) -> str:
    """A keyed hash naming an email in logs and counters without revealing it."""
    return tokens.pseudonym(value)


def password_fingerprint(user: User) -> str:
    return tokens.fingerprint(user.hashed_password)
